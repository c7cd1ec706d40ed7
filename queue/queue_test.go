package queue

import (
	"fmt"
	"testing"
	"time"
)

func TestPublishReceiveAck(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.create("orders", Config{})
	id := f.publish("orders", Message{Payload: []byte(`{"n":1}`), Headers: map[string]string{"X-Kind": "a"}})
	ds := f.receive("orders", 10, time.Second)
	if len(ds) != 1 || ds[0].ID != id || string(ds[0].Payload) != `{"n":1}` || ds[0].Headers["X-Kind"] != "a" || ds[0].Attempts != 1 {
		t.Fatalf("got %+v", ds)
	}
	if st := f.stats("orders"); st.InFlight != 1 || st.QueueSize != 1 {
		t.Fatalf("stats before ack %+v", st)
	}
	f.ack("orders", ds...)
	if ds := f.receive("orders", 10, 0); len(ds) != 0 {
		t.Fatalf("after ack got %d", len(ds))
	}
	waitFor(t, func() bool { st := f.stats("orders"); return st.QueueSize == 0 && st.ProcessedMessages == 1 })
}

func TestPriorityHigherFirstFIFOWithin(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.create("prio", Config{})
	var want []string
	for i, p := range []int{0, 5, 9, 5, 0, 9} {
		f.publish("prio", Message{ID: fmt.Sprintf("m%d-p%d", i, p), Payload: []byte(`1`), Priority: p})
	}
	want = []string{"m2-p9", "m5-p9", "m1-p5", "m3-p5", "m0-p0", "m4-p0"}
	var got []string
	for len(got) < len(want) {
		ds := f.receive("prio", 1, time.Second)
		if len(ds) == 0 {
			t.Fatalf("ran dry after %v", got)
		}
		got = append(got, ds[0].ID)
		f.ack("prio", ds...)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}

func TestDelayNeverEarlyNeverBlocks(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.create("delay", Config{})
	start := time.Now()
	f.publish("delay", Message{ID: "late", Payload: []byte(`1`), Delay: 700 * time.Millisecond, Priority: 9})
	f.publish("delay", Message{ID: "now", Payload: []byte(`2`)})
	ds := f.receive("delay", 10, time.Second)
	if len(ds) != 1 || ds[0].ID != "now" {
		t.Fatalf("first receive %+v", ds)
	}
	f.ack("delay", ds...)
	if st := f.stats("delay"); st.Delayed != 1 {
		t.Fatalf("delayed %d", st.Delayed)
	}
	ds = f.receive("delay", 10, 3*time.Second)
	if len(ds) != 1 || ds[0].ID != "late" {
		t.Fatalf("second receive %+v", ds)
	}
	if el := time.Since(start); el < 700*time.Millisecond {
		t.Fatalf("delayed message delivered after %s", el)
	}
	f.ack("delay", ds...)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestParseAck(t *testing.T) {
	t.Parallel()
	for reply, want := range map[string]meta{
		"$JS.ACK.S.p3.2.10.7.1700000000000000000.5":           {stream: "S", consumer: "p3", delivered: 2, seq: 10},
		"$JS.ACK.dom.hash.S.p0.1.4.4.1700000000000000000.0.x": {stream: "S", consumer: "p0", delivered: 1, seq: 4},
	} {
		got, ok := parseAck(reply)
		if !ok || got.stream != want.stream || got.consumer != want.consumer || got.delivered != want.delivered || got.seq != want.seq {
			t.Fatalf("%s: %+v %v", reply, got, ok)
		}
	}
	for _, bad := range []string{"", "$JS.ACK", "$JS.ACK.S.p0.x.1.1.1.0", "a.b.c.d.e.f.g.h.i", "$JS.ACK.a.b.c.d.e.f.g.h.i.j.k.l.m"} {
		if _, ok := parseAck(bad); ok {
			t.Fatalf("%q accepted", bad)
		}
	}
}

func BenchmarkParseAck(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		parseAck("$JS.ACK.S.p3.2.10.7.1700000000000000000.5")
	}
}
