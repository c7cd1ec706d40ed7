package eventstore

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/plexushq/plexus/telemetry"
)

// The second stored format keeps an append in one engine message: its
// events and their envelopes in the payload, framed as below, instead of
// one message per event with the envelope in NATS headers (the first
// format). One message makes an append atomic without the engine's batch
// staging, and reads decode the envelope without header parsing.
//
//	frame = 0x02 uvarint(n) uvarint(firstVersion) event{n}
//	event = field(id) field(type) field(source) field(correlationId)
//	        field(causationId) field(metadata) field(traceparent)
//	        field(tracestate) field(baggage) uvarint(len(data)) data
//	field = uvarint(0)                     the previous event's value
//	      | uvarint(len+1) bytes           this value
//
// The first event's "previous" values are empty. Events of one append
// usually share their type, source, correlation and trace, so those cost a
// byte each after the first event.
const frameV2 byte = 0x02

// frameFields is the number of string fields before an event's data.
const frameFields = 9

// Field indexes of an event in a frame.
const (
	fID = iota
	fType
	fSource
	fCorrelation
	fCausation
	fMetadata
	fTraceParent
	fTraceState
	fBaggage
)

// errFrame reports a payload that is not a valid frame.
var errFrame = errors.New("eventstore: corrupt event frame")

// traceFields is the W3C trace context and baggage an append ran in.
type traceFields = telemetry.Trace

// appendFrame encodes events, whose first has version first, all appended
// in the trace context tr.
func appendFrame(b []byte, first int64, events []Event, tr traceFields) []byte {
	b = append(b, frameV2)
	b = binary.AppendUvarint(b, uint64(len(events)))
	b = binary.AppendUvarint(b, uint64(first))
	var prev [frameFields]string
	for i := range events {
		e := &events[i]
		cur := [frameFields]string{e.ID, e.Type, e.Source, e.CorrelationID, e.CausationID,
			string(e.Metadata), tr.Parent, tr.State, tr.Baggage}
		for f, v := range cur {
			if i > 0 && v == prev[f] {
				b = append(b, 0)
				continue
			}
			b = binary.AppendUvarint(b, uint64(len(v))+1)
			b = append(b, v...)
		}
		prev = cur
		b = binary.AppendUvarint(b, uint64(len(e.Data)))
		b = append(b, e.Data...)
	}
	return b
}

// frameEvent is one decoded event of a frame; data aliases the payload.
type frameEvent struct {
	version int64
	fields  [frameFields]string
	data    []byte
}

// frameReader walks a frame's events.
type frameReader struct {
	b     []byte
	n     int // events left
	next  int64
	ev    frameEvent
	first bool
	// seen holds each field's value in the previous frame read with the
	// same cache, so that a reader of many appends with the same type and
	// source does not allocate them again.
	seen *[frameFields]string
}

// readFrame checks a frame's head and prepares to walk its events.
func readFrame(b []byte) (frameReader, int, error) {
	if len(b) == 0 || b[0] != frameV2 {
		return frameReader{}, 0, errFrame
	}
	b = b[1:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n == 0 || n > MaxBatch {
		return frameReader{}, 0, fmt.Errorf("%w: %d events", errFrame, n)
	}
	b = b[k:]
	v, k := binary.Uvarint(b)
	if k <= 0 || v == 0 || v > 1<<62 {
		return frameReader{}, 0, fmt.Errorf("%w: first version %d", errFrame, v)
	}
	return frameReader{b: b[k:], n: int(n), next: int64(v), first: true}, int(n), nil
}

// str is b as a string, the cached one when it is the same.
func (r *frameReader) str(f int, b []byte) string {
	if r.seen == nil {
		return string(b)
	}
	if r.seen[f] == string(b) { // no allocation for the comparison
		return r.seen[f]
	}
	v := string(b)
	if f != fID { // ids never repeat across appends
		r.seen[f] = v
	}
	return v
}

// Next decodes the next event; nil at the end.
func (r *frameReader) Next() (*frameEvent, error) {
	if r.n == 0 {
		if len(r.b) != 0 {
			return nil, fmt.Errorf("%w: %d bytes after the last event", errFrame, len(r.b))
		}
		return nil, nil
	}
	for f := range frameFields {
		l, k := binary.Uvarint(r.b)
		if k <= 0 || l > uint64(len(r.b)-k)+1 {
			return nil, fmt.Errorf("%w: field %d", errFrame, f)
		}
		r.b = r.b[k:]
		if l == 0 {
			if r.first {
				return nil, fmt.Errorf("%w: first event repeats field %d", errFrame, f)
			}
			continue
		}
		r.ev.fields[f] = r.str(f, r.b[:l-1])
		r.b = r.b[l-1:]
	}
	l, k := binary.Uvarint(r.b)
	if k <= 0 || l > uint64(len(r.b)-k) {
		return nil, fmt.Errorf("%w: data", errFrame)
	}
	r.ev.data = r.b[k : k+int(l) : k+int(l)]
	r.b = r.b[k+int(l):]
	r.ev.version = r.next
	r.next++
	r.n--
	r.first = false
	return &r.ev, nil
}
