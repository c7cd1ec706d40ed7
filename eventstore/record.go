package eventstore

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// storedEvent is an event as read from the engine: its envelope and the
// trace context it was appended in.
type storedEvent struct {
	Envelope
	trace traceFields
}

// message is one stored engine message, whatever the reader got it from
// (direct get, consumer).
type message struct {
	subject string
	seq     uint64
	time    time.Time
	header  nats.Header
	data    []byte
}

var (
	nullJSON  = json.RawMessage("null")
	emptyJSON = json.RawMessage("{}")
)

// events calls fn with each event of m in order, in either stored format;
// messages that hold no event (the format marker) have none. fn may keep
// the envelope but not the pointer.
func (l layout) events(m message, fn func(*storedEvent) error) error {
	return l.decode(m, nil, fn)
}

// decoder decodes the messages of one reader, reusing the strings that
// repeat from one append to the next (types, sources).
type decoder struct {
	l    layout
	seen [frameFields]string
}

func (d *decoder) events(m message, fn func(*storedEvent) error) error {
	return d.l.decode(m, &d.seen, fn)
}

func (l layout) decode(m message, seen *[frameFields]string, fn func(*storedEvent) error) error {
	if _, v1 := m.header[hdrVersion]; v1 {
		e, err := firstFormat(m)
		if err != nil {
			return err
		}
		return fn(&e)
	}
	stream, ok := streamOfSubject(m.subject)
	if !ok {
		if m.subject == formatSubject {
			return nil
		}
		return fmt.Errorf("eventstore: message %d has subject %q, not an event's", m.seq, m.subject)
	}
	r, _, err := readFrame(m.data)
	if err != nil {
		return fmt.Errorf("eventstore: message %d: %w", m.seq, err)
	}
	r.seen = seen
	var e storedEvent
	e.Stream, e.Timestamp = stream, m.time.UTC()
	for idx := 0; ; idx++ {
		fe, err := r.Next()
		if err != nil {
			return fmt.Errorf("eventstore: message %d: %w", m.seq, err)
		}
		if fe == nil {
			return nil
		}
		e.ID, e.Type, e.Source = fe.fields[fID], fe.fields[fType], fe.fields[fSource]
		e.CorrelationID, e.CausationID = fe.fields[fCorrelation], fe.fields[fCausation]
		e.Metadata, e.Data = emptyJSON, nullJSON
		if md := fe.fields[fMetadata]; md != "" {
			e.Metadata = json.RawMessage(md)
		}
		if len(fe.data) > 0 {
			e.Data = fe.data
		}
		e.Version, e.Position = fe.version, l.pos(m.seq, idx)
		e.trace = traceFields{Parent: fe.fields[fTraceParent], State: fe.fields[fTraceState], Baggage: fe.fields[fBaggage]}
		if err := fn(&e); err != nil {
			return err
		}
	}
}

// firstFormat reads an event of the first stored format: one message, the
// envelope in headers, the data as the payload; its position is its
// sequence.
func firstFormat(m message) (storedEvent, error) {
	stream, typ, ok := parseSubject(m.subject)
	if !ok {
		return storedEvent{}, fmt.Errorf("eventstore: message %d has subject %q, not an event's", m.seq, m.subject)
	}
	h := m.header
	version, err := strconv.ParseInt(h.Get(hdrVersion), 10, 64)
	if err != nil {
		return storedEvent{}, fmt.Errorf("eventstore: event %d has no version: %w", m.seq, err)
	}
	e := storedEvent{Envelope: Envelope{
		ID: h.Get(hdrID), Type: typ, Stream: stream, Version: version, Position: m.seq,
		Data: m.data, Metadata: json.RawMessage(h.Get(hdrMetadata)), Source: h.Get(hdrSource),
		CorrelationID: h.Get(hdrCorrelation), CausationID: h.Get(hdrCausation), Timestamp: m.time.UTC(),
	}, trace: traceFields{Parent: h.Get("traceparent"), State: h.Get("tracestate"), Baggage: h.Get("baggage")}}
	if len(e.Data) == 0 {
		e.Data = nullJSON
	}
	if len(e.Metadata) == 0 {
		e.Metadata = emptyJSON
	}
	return e, nil
}

// directMessage reads a direct get answer's parts.
func directMessage(m *nats.Msg) (message, error) {
	seq, err := strconv.ParseUint(m.Header.Get(hdrSequence), 10, 64)
	if err != nil {
		return message{}, fmt.Errorf("eventstore: answer without a sequence: %w", err)
	}
	ts, _ := time.Parse(time.RFC3339Nano, m.Header.Get(hdrTimeStamp))
	return message{subject: m.Header.Get(hdrSubject), seq: seq, time: ts, header: m.Header, data: m.Data}, nil
}

// mixedType is the type token of an append whose events have different
// types: filters by type also take these messages and keep the matching
// events. Types start with a letter or digit, so no type has this token.
const mixedType = "_mixed"

// appendType is the subject token of an append's events' type.
func appendType(events []Event) string {
	for i := 1; i < len(events); i++ {
		if events[i].Type != events[0].Type {
			return mixedType
		}
	}
	return token(events[0].Type)
}

// typeSet is a filter's types; empty keeps every type.
type typeSet []string

func (ts typeSet) has(t string) bool {
	if len(ts) == 0 {
		return true
	}
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}
