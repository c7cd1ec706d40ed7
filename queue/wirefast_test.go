package queue

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/plexushq/plexus/internal/httpx"
)

func FuzzAppendDeliveries(f *testing.F) {
	f.Add("id-1", []byte(`{"a":1}`), 3, 2, "X-T", "v", "rcpt.x-y_z")
	f.Add("<&>\"é", []byte("not json \xff"), 0, 1, "", "", "")
	f.Add("", []byte("[1,\n2]"), 9, 7, "k\n", "v\x00<", "r")
	f.Fuzz(func(t *testing.T, id string, payload []byte, prio, attempts int, hk, hv, receipt string) {
		d := &Delivery{ID: id, Payload: payload, Priority: prio, Attempts: attempts,
			Timestamp: time.Unix(1700000000, 42).UTC(), Receipt: receipt}
		if hk != "" {
			d.Headers = map[string]string{hk: hv, "Z-Last": "z"}
		}
		got := appendDeliveries(nil, []*Delivery{d, d})
		want, err := json.Marshal(map[string]any{"messages": []wireMessage{fromDelivery(d), fromDelivery(d)}})
		if err != nil {
			t.Skip()
		}
		var a, b any
		if err := json.Unmarshal(got, &a); err != nil {
			t.Fatalf("invalid JSON %q: %v", got, err)
		}
		_ = json.Unmarshal(want, &b)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
	})
}

func FuzzDecodeReceipts(f *testing.F) {
	for _, s := range []string{`{"receipts":["a.b.c","d"]}`, ` { "receipts" : [ "x" ] } `, `{"receipts":[]}`,
		`{"receipts":["a"],"x":1}`, `{"receipts":["a\u0041"]}`, `{"receipts":["a"]}x`, `{"Receipts":["a"]}`, `{"receipts":["a",]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, ok := decodeReceipts(body)
		if !ok {
			return // the strict decoder decides
		}
		var req receiptsRequest
		if p := httpx.DecodeJSONBytes(body, &req); p != nil {
			t.Fatalf("fast path took %q, which the strict decoder refuses: %v", body, p)
		}
		if !reflect.DeepEqual(got, req.Receipts) {
			t.Fatalf("%q: fast %q, strict %q", body, got, req.Receipts)
		}
	})
}

func FuzzDecodeReceive(f *testing.F) {
	for _, s := range []string{`{}`, `{"max":64,"wait":"1s","consumer":"c1"}`, `{"max":2,"wait":"1s","ack":["a.b.c","d"]}`,
		` {"visibilityTimeout" : "90s", "max" : 007}`, `{"max":1e2}`, `{"max":1,"max":2}`, `{"wait":5}`, `{"consumer":"a\"b"}`,
		`{"ack":null}`, `{"Max":3}`, `{"max":-1}`, `{"wait":"1h","x":1}`, `{"max":99999999999}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, ok := decodeReceive(body)
		if !ok {
			return
		}
		var req receiveRequest
		if p := httpx.DecodeJSONBytes(body, &req); p != nil {
			t.Fatalf("fast path took %q, which the strict decoder refuses: %v", body, p)
		}
		if !reflect.DeepEqual(got, req) {
			t.Fatalf("%q: fast %+v, strict %+v", body, got, req)
		}
	})
}

func FuzzDecodePublishFast(f *testing.F) {
	for _, s := range []string{`{"payload":{"a":[1,"]}"]}}`, `{"payload":"x\"y","id":"m-1","priority":3}`,
		`{"messages":[{"payload":1},{"priority":2,"payload":[true,null]}]}`, ` { "payload" : "a" } `, `{"payload":nul}`,
		`{"payload":1,"payload":2}`, `{"messages":[]}`, `{"messages":[{"payload":1}],"payload":2}`, `{"payload":"\xff"}`,
		`{"Payload":1}`, `{"payload":1}x`, `{"payload":-0.5e3}`, `{"id":"a"}`, `{"payload":{"a":1}}}`, `{"payload":"a\\"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, gotBatch, ok := decodePublishFast(body)
		if !ok {
			return // the strict decoder decides
		}
		want, wantBatch, p := decodePublishStrict(body)
		if p != nil {
			t.Fatalf("fast path took %q, which the strict decoder refuses: %v", body, p)
		}
		if gotBatch != wantBatch || len(got) != len(want) {
			t.Fatalf("%q: fast %v %d items, strict %v %d", body, gotBatch, len(got), wantBatch, len(want))
		}
		for i := range got {
			g, w := got[i], want[i]
			if string(g.Payload) != string(w.Payload) || g.ID != w.ID || g.Priority != w.Priority || w.Delay != 0 || w.Headers != nil {
				t.Fatalf("%q item %d: fast %+v, strict %+v", body, i, g, w)
			}
		}
	})
}

func FuzzAppendIDs(f *testing.F) {
	f.Add("01HX", "a\"<\u2028b", true)
	f.Add("x", "", false)
	f.Fuzz(func(t *testing.T, a, b string, batch bool) {
		ids := []string{a, b}
		var want []byte
		if batch {
			want, _ = json.Marshal(map[string]any{"ids": ids})
		} else {
			want, _ = json.Marshal(map[string]any{"id": a})
		}
		if got := appendIDs(nil, ids, batch); string(got) != string(want)+"\n" {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
	})
}

func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{`"abc"`, `"a\"b"`, `"a\\"`, "\"a\x01\"", `"`, `""`, `"a"b"`, `{"a":1}`, `"é"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		if !utf8.Valid(p) {
			return // callers check UTF-8 themselves
		}
		if got, want := validJSON(p), json.Valid(p); got != want {
			t.Fatalf("%q: validJSON %v, json.Valid %v", p, got, want)
		}
	})
}
