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

// UnmarshalJSON reads an envelope. The form the API writes (appendEnvelope:
// these fields in this order, names and ids without escapes) is read in
// one pass; anything else goes through encoding/json, which gives the
// same result (FuzzEnvelopeRoundTrip).
func (e *Envelope) UnmarshalJSON(b []byte) error {
	if readEnvelope(b, e) {
		return nil
	}
	type plain Envelope // no UnmarshalJSON: encoding/json's own decoding
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*e = Envelope(p)
	return nil
}

// readEnvelope is UnmarshalJSON's one-pass reader; false when b is not in
// the API's form.
func readEnvelope(b []byte, e *Envelope) bool {
	r := envReader{b: b}
	var out Envelope
	var data, meta []byte
	ok := r.lit(`{"id":`) && r.str(&out.ID) &&
		r.lit(`,"type":`) && r.str(&out.Type) &&
		r.lit(`,"stream":`) && r.str(&out.Stream) &&
		r.lit(`,"version":`) && r.int(&out.Version) &&
		r.lit(`,"position":`) && r.uint(&out.Position) &&
		r.lit(`,"data":`) && r.value(&data) &&
		r.lit(`,"metadata":`) && r.value(&meta) &&
		r.lit(`,"source":`) && r.str(&out.Source) &&
		r.lit(`,"correlationId":`) && r.str(&out.CorrelationID) &&
		r.lit(`,"causationId":`) && r.str(&out.CausationID) &&
		r.lit(`,"timestamp":`) && r.time(&out.Timestamp) &&
		r.lit(`}`) && r.i == len(r.b)
	if !ok || !json.Valid(data) || !json.Valid(meta) {
		return false
	}
	buf := make([]byte, len(data)+len(meta)) // the caller may reuse b
	copy(buf, data)
	copy(buf[len(data):], meta)
	out.Data, out.Metadata = buf[:len(data):len(data)], buf[len(data):]
	*e = out
	return true
}

// envReader walks an envelope in the API's form.
type envReader struct {
	b []byte
	i int
}

func (r *envReader) lit(s string) bool {
	if len(r.b)-r.i < len(s) || string(r.b[r.i:r.i+len(s)]) != s {
		return false
	}
	r.i += len(s)
	return true
}

// str reads a string of printable ASCII without escapes.
func (r *envReader) str(dst *string) bool {
	if !r.lit(`"`) {
		return false
	}
	start := r.i
	for ; r.i < len(r.b); r.i++ {
		switch c := r.b[r.i]; {
		case c == '"':
			*dst = string(r.b[start:r.i])
			r.i++
			return true
		case c < 0x20 || c >= 0x7f || c == '\\' || c == '<' || c == '>' || c == '&':
			return false
		}
	}
	return false
}

func (r *envReader) digits() (string, bool) {
	start := r.i
	if r.i < len(r.b) && r.b[r.i] == '-' {
		r.i++
	}
	for r.i < len(r.b) && r.b[r.i] >= '0' && r.b[r.i] <= '9' {
		r.i++
	}
	s := string(r.b[start:r.i])
	return s, len(s) > 0 && s != "-" && !(len(s) > 1 && s[0] == '0') && !(len(s) > 2 && s[0] == '-' && s[1] == '0')
}

func (r *envReader) int(dst *int64) bool {
	s, ok := r.digits()
	if !ok {
		return false
	}
	v, err := strconv.ParseInt(s, 10, 64)
	*dst = v
	return err == nil
}

func (r *envReader) uint(dst *uint64) bool {
	s, ok := r.digits()
	if !ok {
		return false
	}
	v, err := strconv.ParseUint(s, 10, 64)
	*dst = v
	return err == nil
}

func (r *envReader) time(dst *time.Time) bool {
	var s string
	if !r.str(&s) {
		return false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	*dst = t
	return err == nil
}

// value takes one JSON value (its extent; the caller checks it is valid):
// strings are skipped with their escapes, brackets counted.
func (r *envReader) value(dst *[]byte) bool {
	start, depth := r.i, 0
	for r.i < len(r.b) {
		switch c := r.b[r.i]; c {
		case '"':
			r.i++
			for r.i < len(r.b) && r.b[r.i] != '"' {
				if r.b[r.i] == '\\' {
					r.i++
				}
				r.i++
			}
			if r.i >= len(r.b) {
				return false
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				*dst = r.b[start:r.i]
				return r.i > start
			}
			depth--
		case ',':
			if depth == 0 {
				*dst = r.b[start:r.i]
				return r.i > start
			}
		}
		r.i++
	}
	return false
}
