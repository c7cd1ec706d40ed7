package telemetry

import (
	"encoding/base64"
	"time"
)

// Limits on what one span may hold in the store; longer values are cut so a
// single noisy span cannot take the memory meant for many traces.
const (
	maxAttrValueLen = 4096
	maxAttrsPerSpan = 128
	maxEventsPerSpn = 128
)

// Span is one finished span as the trace store keeps and serves it.
type Span struct {
	TraceID      string        `json:"traceId"`
	SpanID       string        `json:"spanId"`
	ParentSpanID string        `json:"parentSpanId,omitempty"`
	Service      string        `json:"service"`
	Name         string        `json:"name"`
	Kind         string        `json:"kind,omitempty"`
	Start        time.Time     `json:"start"`
	Duration     time.Duration `json:"duration"`
	// DurationMs is Duration in milliseconds, for waterfalls.
	DurationMs float64 `json:"durationMs"`
	// Status is "unset", "ok" or "error".
	Status        string         `json:"status"`
	StatusMessage string         `json:"statusMessage,omitempty"`
	Attributes    map[string]any `json:"attributes,omitempty"`
	Events        []SpanEvent    `json:"events,omitempty"`
	Links         []SpanLink     `json:"links,omitempty"`
	// Resource holds the attributes of the process that recorded the span
	// (service.version, service.instance.id, deployment.environment,
	// host.name, telemetry.sdk.*, …). Spans of one export share the map:
	// treat it as read-only.
	Resource map[string]any `json:"resource,omitempty"`
	// Scope is the instrumentation scope (library) that recorded the span.
	Scope *Scope `json:"scope,omitempty"`
}

// Scope names the instrumentation library of a span.
type Scope struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

// SpanEvent is a timed annotation of a span (a log line, an exception, a retry).
type SpanEvent struct {
	Name       string         `json:"name"`
	Time       time.Time      `json:"time"`
	Attributes map[string]any `json:"attributes,omitempty"`
}

// SpanLink points at another span, e.g. a queue consumer at its producer.
type SpanLink struct {
	TraceID string `json:"traceId"`
	SpanID  string `json:"spanId"`
}

// Span status values.
const (
	StatusUnset = "unset"
	StatusOK    = "ok"
	StatusError = "error"
)

func (s *Span) end() time.Time { return s.Start.Add(s.Duration) }

func (s *Span) setTimes(start, end time.Time) {
	if end.Before(start) {
		end = start
	}
	s.Start = start.UTC()
	s.Duration = end.Sub(start)
	s.DurationMs = float64(end.Sub(start)) / float64(time.Millisecond)
}

// size estimates the bytes the span occupies in memory; the store's byte
// bound is kept against these estimates.
func (s *Span) size() int64 {
	n := 256 + len(s.TraceID) + len(s.SpanID) + len(s.ParentSpanID) + len(s.Service) +
		len(s.Name) + len(s.Kind) + len(s.StatusMessage) + attrsSize(s.Attributes)
	for _, e := range s.Events {
		n += 64 + len(e.Name) + attrsSize(e.Attributes)
	}
	n += 64 * len(s.Links)
	// The resource map is shared by the spans of one export; its size is
	// counted per span all the same, so the byte bound errs on the safe side.
	n += attrsSize(s.Resource)
	if s.Scope != nil {
		n += 32 + len(s.Scope.Name) + len(s.Scope.Version)
	}
	return int64(n)
}

func attrsSize(m map[string]any) int {
	n := 48 * len(m)
	for k, v := range m {
		n += len(k) + valueSize(v)
	}
	return n
}

func valueSize(v any) int {
	switch x := v.(type) {
	case string:
		return 16 + len(x)
	case []any:
		n := 24
		for _, e := range x {
			n += valueSize(e)
		}
		return n
	case map[string]any:
		return 48 + attrsSize(x)
	default:
		return 16
	}
}

// clipString cuts s to the store's value limit.
func clipString(s string) string {
	if len(s) > maxAttrValueLen {
		return s[:maxAttrValueLen]
	}
	return s
}

// clipBytes renders bytes values as base64, clipped.
func clipBytes(b []byte) string {
	if len(b) > maxAttrValueLen {
		b = b[:maxAttrValueLen]
	}
	return base64.StdEncoding.EncodeToString(b)
}
