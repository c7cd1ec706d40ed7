package telemetry

import (
	"encoding/json"

	"github.com/plexushq/plexus/internal/httpx"
)

// The trace and history types hold time.Duration; in JSON durations are
// Go duration strings ("120ms"), as docs/openapi.yaml says. Each *JSON
// type embeds its Go type without methods and replaces the duration.

type spanFields Span

type spanJSON struct {
	spanFields
	Duration httpx.Duration `json:"duration"`
}

// MarshalJSON writes Duration as a Go duration string.
func (s Span) MarshalJSON() ([]byte, error) {
	return json.Marshal(spanJSON{spanFields: spanFields(s), Duration: httpx.Duration(s.Duration)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *Span) UnmarshalJSON(b []byte) error {
	var j spanJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*s = Span(j.spanFields)
	s.Duration = j.Duration.D()
	return nil
}

type summaryFields TraceSummary

type summaryJSON struct {
	summaryFields
	Duration httpx.Duration `json:"duration"`
}

// MarshalJSON writes Duration as a Go duration string.
func (t TraceSummary) MarshalJSON() ([]byte, error) {
	return json.Marshal(summaryJSON{summaryFields: summaryFields(t), Duration: httpx.Duration(t.Duration)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (t *TraceSummary) UnmarshalJSON(b []byte) error {
	var j summaryJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*t = TraceSummary(j.summaryFields)
	t.Duration = j.Duration.D()
	return nil
}

type historyFields HistoryAnswer

type historyJSON struct {
	historyFields
	Interval httpx.Duration `json:"interval"`
}

// MarshalJSON writes Interval as a Go duration string.
func (h HistoryAnswer) MarshalJSON() ([]byte, error) {
	return json.Marshal(historyJSON{historyFields: historyFields(h), Interval: httpx.Duration(h.Interval)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (h *HistoryAnswer) UnmarshalJSON(b []byte) error {
	var j historyJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*h = HistoryAnswer(j.historyFields)
	h.Interval = j.Interval.D()
	return nil
}
