package eventstore

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// readAll decodes a whole frame.
func readAll(b []byte) ([]frameEvent, error) {
	r, n, err := readFrame(b)
	if err != nil {
		return nil, err
	}
	var out []frameEvent
	for {
		fe, err := r.Next()
		if err != nil {
			return nil, err
		}
		if fe == nil {
			if len(out) != n {
				return nil, errFrame
			}
			return out, nil
		}
		e := *fe
		e.data = bytes.Clone(fe.data)
		out = append(out, e)
	}
}

func TestFrameRoundTrip(t *testing.T) {
	events := []Event{
		{Type: "user.created", ID: "a", Source: "web", CorrelationID: "c", Data: json.RawMessage(`{"n":1}`),
			Metadata: json.RawMessage(`{"ip":"1"}`)},
		{Type: "user.created", ID: "b", Source: "web", CorrelationID: "c", Data: json.RawMessage(`2`)},
		{Type: "user.login", ID: "c", Source: "", CorrelationID: "d", CausationID: "a", Data: nil},
	}
	tr := traceFields{Parent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", Baggage: "k=v"}
	b := appendFrame(nil, 41, events, tr)
	got, err := readAll(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d events", len(got))
	}
	for i, e := range events {
		g := got[i]
		want := [frameFields]string{e.ID, e.Type, e.Source, e.CorrelationID, e.CausationID, string(e.Metadata), tr.Parent, tr.State, tr.Baggage}
		if g.fields != want || !bytes.Equal(g.data, e.Data) || g.version != int64(41+i) {
			t.Fatalf("event %d: %+v, want %v %s", i, g, want, e.Data)
		}
	}
	// Repeated fields cost a byte each: the second event is its id and data.
	one := len(appendFrame(nil, 1, events[:1], tr))
	two := len(appendFrame(nil, 1, events[:2], tr))
	if extra := two - one; extra > 2+len("b")+frameFields+len(`2`) {
		t.Fatalf("the second event took %d bytes", extra)
	}
}

func TestFrameRejectsCorruptPayloads(t *testing.T) {
	good := appendFrame(nil, 1, []Event{{Type: "a", ID: "x", Data: json.RawMessage(`1`)}}, traceFields{})
	for name, b := range map[string][]byte{
		"empty":           nil,
		"json":            []byte(`{"a":1}`),
		"no events":       {frameV2, 0, 1},
		"version 0":       {frameV2, 1, 0},
		"too many events": append([]byte{frameV2}, 0xe9, 0x07, 1), // 1001
		"truncated":       good[:len(good)-1],
		"trailing":        append(bytes.Clone(good), 0),
		"repeat first":    {frameV2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		"long field":      {frameV2, 1, 1, 0x7f},
	} {
		if _, err := readAll(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func FuzzFrame(f *testing.F) {
	f.Add(appendFrame(nil, 1, []Event{{Type: "a", ID: "x", Data: json.RawMessage(`1`)}}, traceFields{}))
	f.Add(appendFrame(nil, 7, []Event{{Type: "a", ID: "x"}, {Type: "b", ID: "y", Metadata: json.RawMessage(`{}`)}},
		traceFields{Parent: "p", State: "s", Baggage: "b"}))
	f.Add([]byte{frameV2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := readAll(b)
		if err != nil {
			return
		}
		// Whatever decodes encodes back to the same events.
		in := make([]Event, len(evs))
		var tr traceFields
		for i, e := range evs {
			in[i] = Event{ID: e.fields[fID], Type: e.fields[fType], Source: e.fields[fSource],
				CorrelationID: e.fields[fCorrelation], CausationID: e.fields[fCausation],
				Metadata: json.RawMessage(e.fields[fMetadata]), Data: e.data}
			if i > 0 && (e.fields[fTraceParent] != tr.Parent || e.fields[fTraceState] != tr.State || e.fields[fBaggage] != tr.Baggage) {
				return // one append has one trace context; this frame is not one we write
			}
			tr = traceFields{Parent: e.fields[fTraceParent], State: e.fields[fTraceState], Baggage: e.fields[fBaggage]}
		}
		again, err := readAll(appendFrame(nil, evs[0].version, in, tr))
		if err != nil || len(again) != len(evs) {
			t.Fatalf("re-encoded frame: %v", err)
		}
		for i := range evs {
			if again[i].fields != evs[i].fields || !bytes.Equal(again[i].data, evs[i].data) || again[i].version != evs[i].version {
				t.Fatalf("event %d: %+v, want %+v", i, again[i], evs[i])
			}
		}
	})
}

func TestLayoutOrdersEveryPosition(t *testing.T) {
	for _, l := range []layout{{from: 1}, {from: 11}} {
		var prev uint64
		for seq := uint64(1); seq < 30; seq++ {
			n := 1
			if seq >= l.from {
				n = 3 // second-format messages hold several events
			}
			for idx := range n {
				p := l.pos(seq, idx)
				if p <= prev {
					t.Fatalf("%+v: position %d of %d/%d not after %d", l, p, seq, idx, prev)
				}
				if s, i := l.at(p); s != seq || i != idx {
					t.Fatalf("%+v: position %d maps to %d/%d, want %d/%d", l, p, s, i, seq, idx)
				}
				if p > l.lastPos(seq) {
					t.Fatalf("%+v: position %d past the bound of message %d", l, p, seq)
				}
				prev = p
			}
		}
		// A position between two events maps to the message of the next.
		if s, i := l.at(l.lastPos(l.from + 2)); s != l.from+2 || i != PositionsPerMessage-1 {
			t.Fatalf("%+v: %d/%d", l, s, i)
		}
		if s, _ := l.at(l.from); l.from > 1 && s != l.from {
			t.Fatalf("%+v: the marker's sequence as a position maps to %d", l, s)
		}
	}
}

func TestEventsOfBothFormats(t *testing.T) {
	l := layout{from: 3}
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	frame := appendFrame(nil, 2, []Event{{Type: "a.b", ID: "x"}, {Type: "c", ID: "y", Data: json.RawMessage(`[1]`)}}, traceFields{})
	var got []Envelope
	collect := func(e *storedEvent) error { got = append(got, e.Envelope); return nil }
	msgs := []message{
		{subject: "plexus.events.s.s-1.a~b", seq: 2, time: ts, data: []byte(`{"v":1}`),
			header: map[string][]string{hdrVersion: {"1"}, hdrID: {"old"}}},
		{subject: formatSubject, seq: 3, time: ts, data: []byte(`{"format":2}`)},
		{subject: "plexus.events.s.s-1." + mixedType, seq: 4, time: ts, data: frame},
	}
	for _, m := range msgs {
		if err := l.events(m, collect); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 3 || got[0].Position != 2 || got[0].ID != "old" || string(got[0].Metadata) != "{}" ||
		got[1].Position != 4000 || got[1].Type != "a.b" || string(got[1].Data) != "null" ||
		got[2].Position != 4001 || got[2].Version != 3 || got[2].Stream != "s-1" || !got[2].Timestamp.Equal(ts) {
		t.Fatalf("%+v", got)
	}
	if err := l.events(message{subject: "other.subject", seq: 5}, collect); err == nil {
		t.Fatal("a message that is not an event's decoded")
	}
}
