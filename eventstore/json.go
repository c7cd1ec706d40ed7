package eventstore

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// appendEnvelope writes e as JSON, as encoding/json would, in one pass:
// readers of many events spend their time here. Data and metadata were
// checked when they were appended and are copied as they are, compacted
// only when they span lines (an NDJSON line and an SSE event are one line).
func appendEnvelope(b []byte, e *Envelope) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, e.ID)
	b = append(b, `,"type":`...)
	b = appendString(b, e.Type)
	b = append(b, `,"stream":`...)
	b = appendString(b, e.Stream)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, e.Version, 10)
	b = append(b, `,"position":`...)
	b = strconv.AppendUint(b, e.Position, 10)
	b = append(b, `,"data":`...)
	b = appendRaw(b, e.Data)
	b = append(b, `,"metadata":`...)
	b = appendRaw(b, e.Metadata)
	b = append(b, `,"source":`...)
	b = appendString(b, e.Source)
	b = append(b, `,"correlationId":`...)
	b = appendString(b, e.CorrelationID)
	b = append(b, `,"causationId":`...)
	b = appendString(b, e.CausationID)
	b = append(b, `,"timestamp":"`...)
	b = e.Timestamp.AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...)
}

// appendString writes s as a JSON string. Names and generated ids need no
// escaping; anything else goes through encoding/json.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
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
