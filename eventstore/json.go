package eventstore

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"

	"github.com/plexushq/plexus/internal/httpx"
)

// appendEnvelope writes e as JSON, as encoding/json would, in one pass:
// readers of many events spend their time here. Data and metadata were
// checked when they were appended and are copied as they are, compacted
// only when they span lines (an NDJSON line and an SSE event are one line).
func appendEnvelope(b []byte, e *Envelope) []byte {
	b = append(b, `{"id":`...)
	b = httpx.AppendString(b, e.ID)
	b = append(b, `,"type":`...)
	b = httpx.AppendString(b, e.Type)
	b = append(b, `,"stream":`...)
	b = httpx.AppendString(b, e.Stream)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, e.Version, 10)
	b = append(b, `,"position":`...)
	b = strconv.AppendUint(b, e.Position, 10)
	b = append(b, `,"data":`...)
	b = appendRaw(b, e.Data)
	b = append(b, `,"metadata":`...)
	b = appendRaw(b, e.Metadata)
	b = append(b, `,"source":`...)
	b = httpx.AppendString(b, e.Source)
	b = append(b, `,"correlationId":`...)
	b = httpx.AppendString(b, e.CorrelationID)
	b = append(b, `,"causationId":`...)
	b = httpx.AppendString(b, e.CausationID)
	b = append(b, `,"timestamp":"`...)
	b = e.Timestamp.AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...)
}

// appendRaw writes stored JSON; null when empty.
func appendRaw(b []byte, raw []byte) []byte {
	switch {
	case len(raw) == 0:
		return append(b, "null"...)
	case bytes.IndexByte(raw, '\n') >= 0 || bytes.IndexByte(raw, '\r') >= 0:
		var buf bytes.Buffer
		if json.Compact(&buf, raw) == nil {
			return append(b, buf.Bytes()...)
		}
	}
	return append(b, raw...)
}

// MarshalJSON writes the envelope as its JSON object.
func (e Envelope) MarshalJSON() ([]byte, error) {
	return appendEnvelope(make([]byte, 0, 256+len(e.Data)+len(e.Metadata)), &e), nil
}

// appendPage writes a page of events: {"events":[…]} and, when next is
// not nil, "nextPosition".
func appendPage(b []byte, events []Envelope, next *uint64) []byte {
	b = append(b, `{"events":[`...)
	for i := range events {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendEnvelope(b, &events[i])
	}
	b = append(b, ']')
	if next != nil {
		b = append(b, `,"nextPosition":`...)
		b = strconv.AppendUint(b, *next, 10)
	}
	return append(b, '}', '\n')
}
