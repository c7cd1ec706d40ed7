package eventstore

import (
	"encoding/json"
	"testing"
	"time"
)

// plainEnvelope is Envelope without its MarshalJSON: what encoding/json
// writes for it.
type plainEnvelope Envelope

func FuzzAppendEnvelope(f *testing.F) {
	f.Add("evt-1", "user-1", "web", "corr", "", []byte(`{"a":1}`), []byte(`{}`), int64(3), uint64(2001))
	f.Add("x\"<>&\u2028é\xff", "s", "", "", "cause", []byte("{\n  \"a\": [1,\n 2]\n}"), []byte(nil), int64(1), uint64(1))
	f.Add("", "a", "\x01", "\t", "\\", []byte(`"str"`), []byte("{\r\n}"), int64(0), uint64(0))
	f.Fuzz(func(t *testing.T, id, stream, source, corr, cause string, data, meta []byte, version int64, pos uint64) {
		if len(data) > 0 && !json.Valid(data) || len(meta) > 0 && !json.Valid(meta) {
			return // the store keeps only valid JSON
		}
		e := Envelope{ID: id, Type: "t.x", Stream: stream, Version: version, Position: pos, Data: data, Metadata: meta,
			Source: source, CorrelationID: corr, CausationID: cause, Timestamp: time.Unix(1700000000, 123456789).UTC()}
		got := appendEnvelope(nil, &e)
		if !json.Valid(got) {
			t.Fatalf("invalid JSON %q", got)
		}
		for _, c := range got {
			if c == '\n' || c == '\r' {
				t.Fatalf("a line break in %q", got)
			}
		}
		want, err := json.Marshal(plainEnvelope(e))
		if err != nil {
			return
		}
		var a, b any
		if json.Unmarshal(got, &a) != nil || json.Unmarshal(want, &b) != nil {
			t.Fatalf("does not decode: %q / %q", got, want)
		}
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if string(ja) != string(jb) {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
	})
}

func FuzzEnvelopeRoundTrip(f *testing.F) {
	f.Add([]byte(`{"id":"a","type":"t","stream":"s","version":1,"position":2000,"data":{"x":[1,"]"]},"metadata":{},"source":"unknown","correlationId":"c","causationId":"","timestamp":"2026-11-29T22:00:00.123Z"}`))
	f.Add([]byte(`{"id":"a\u00e9","type":"t","stream":"s","version":1,"position":2,"data":"x\"y","metadata":{"k":1},"source":"s","correlationId":"c","causationId":"d","timestamp":"2026-11-29T22:00:00Z"}`))
	f.Add([]byte(`{"type":"t","id":"a"}`))
	f.Add([]byte(`{"id":"a","type":"t","stream":"s","version":-0,"position":2,"data":nul,"metadata":{},"source":"s","correlationId":"c","causationId":"d","timestamp":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var got Envelope
		gerr := json.Unmarshal(b, &got)
		var want plainEnvelope
		werr := json.Unmarshal(b, &want)
		if (gerr == nil) != (werr == nil) {
			t.Fatalf("%q: errors %v / %v", b, gerr, werr)
		}
		if gerr != nil {
			return
		}
		g, _ := json.Marshal(plainEnvelope(got))
		w, _ := json.Marshal(want)
		if string(g) != string(w) {
			t.Fatalf("%q:\n got %s\nwant %s", b, g, w)
		}
	})
}
