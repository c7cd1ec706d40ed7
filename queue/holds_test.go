package queue

import (
	"errors"
	"testing"
	"time"

	"github.com/plexushq/plexus/internal/enginetest"
)

// twoNodes runs two clients (two nodes) on one engine.
func twoNodes(t *testing.T) (*fixture, *fixture) {
	t.Helper()
	eng := enginetest.Start(t)
	return newFixtureOn(t, eng, nil), newFixtureOn(t, eng, nil)
}

func receipts(ds ...*Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Receipt
	}
	return out
}

// TestReceiptsSettleOnAnyNode: a receipt issued by one node is acked,
// nacked and extended through another, which passes the request on to the
// issuer; every rule of a receipt holds across nodes (a repeat ack is
// harmless and counted once, an older delivery's receipt is stale).
func TestReceiptsSettleOnAnyNode(t *testing.T) {
	t.Parallel()
	a, b := twoNodes(t)
	a.create("x", Config{VisibilityTimeout: 30 * time.Second, RetryDelay: new(time.Duration(0)), RetryAttempts: 10})
	for range 3 {
		a.publish("x", Message{Payload: []byte(`1`)})
	}
	ds := a.receive("x", 3, time.Second)
	if len(ds) != 3 {
		t.Fatalf("received %d", len(ds))
	}
	if err := b.c.Ack(b.ctx, "x", receipts(ds[0])); err != nil {
		t.Fatalf("ack through another node: %v", err)
	}
	if err := b.c.Ack(b.ctx, "x", receipts(ds[0])); err != nil {
		t.Fatalf("repeated ack through another node: %v", err)
	}
	if err := a.c.Ack(a.ctx, "x", receipts(ds[0])); err != nil {
		t.Fatalf("repeated ack at the issuer: %v", err)
	}
	fresh, err := b.c.Extend(b.ctx, "x", receipts(ds[1]))
	if err != nil || len(fresh) != 1 {
		t.Fatalf("extend through another node: %v %v", fresh, err)
	}
	if err := b.c.Nack(b.ctx, "x", ds[1].Receipt, "b failed", 0); err != nil {
		t.Fatalf("nack through another node: %v", err)
	}
	again := b.receive("x", 1, 5*time.Second) // the nacked message, now from node b
	if len(again) != 1 || again[0].Attempts != 2 {
		t.Fatalf("redelivery: %+v", again)
	}
	for name, op := range map[string]func(f *fixture) error{
		"ack":    func(f *fixture) error { return f.c.Ack(f.ctx, "x", receipts(ds[1])) },
		"nack":   func(f *fixture) error { return f.c.Nack(f.ctx, "x", ds[1].Receipt, "again", 0) },
		"extend": func(f *fixture) error { _, err := f.c.Extend(f.ctx, "x", fresh); return err },
	} {
		for _, f := range []*fixture{a, b} {
			if err := op(f); !errors.Is(err, ErrReceiptStale) {
				t.Fatalf("%s with the nacked delivery's receipt: %v", name, err)
			}
		}
	}
	// A batch of receipts of both nodes with one stale: nothing changes.
	err = a.c.Ack(a.ctx, "x", []string{ds[2].Receipt, again[0].Receipt, ds[1].Receipt})
	if !errors.Is(err, ErrReceiptStale) {
		t.Fatalf("mixed batch with a stale receipt: %v", err)
	}
	if err := a.c.Ack(a.ctx, "x", []string{ds[2].Receipt, again[0].Receipt}); err != nil {
		t.Fatalf("mixed batch: %v", err)
	}
	for _, f := range []*fixture{a, b} { // each node adds its counts to the engine's
		if err := f.c.Maintain(f.ctx); err != nil {
			t.Fatal(err)
		}
	}
	st := a.stats("x")
	if st.ProcessedMessages != 3 || st.QueueSize != 0 || st.InFlight != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestReceiptOfAGoneNodeIsStale: a node that restarted forgets the
// deliveries it handed out; their receipts are stale (nothing changes)
// and the messages come back after their visibility timeout.
func TestReceiptOfAGoneNodeIsStale(t *testing.T) {
	t.Parallel()
	eng := enginetest.Start(t)
	a, b := newFixtureOn(t, eng, nil), newFixtureOn(t, eng, nil)
	a.create("g", Config{VisibilityTimeout: time.Second})
	a.publish("g", Message{Payload: []byte(`1`)})
	ds := a.receive("g", 1, time.Second)
	a.c.Close()
	if err := b.c.Ack(b.ctx, "g", receipts(ds...)); !errors.Is(err, ErrReceiptStale) {
		t.Fatalf("ack of a gone node's receipt: %v", err)
	}
	back := b.receive("g", 1, 10*time.Second)
	if len(back) != 1 || back[0].Attempts != 2 {
		t.Fatalf("the message did not come back: %+v", back)
	}
	b.ack("g", back...)
}

// TestInFlightCountsOtherNodesReceipts: a queue's in-flight count includes
// what the receivers of other nodes hold (reported every second).
func TestInFlightCountsOtherNodesReceipts(t *testing.T) {
	t.Parallel()
	a, b := twoNodes(t)
	a.create("f", Config{VisibilityTimeout: time.Minute})
	for range 2 {
		a.publish("f", Message{Payload: []byte(`1`)})
	}
	ds := a.receive("f", 2, time.Second)
	if n := a.stats("f").InFlight; n != 2 {
		t.Fatalf("in flight at the issuer: %d", n)
	}
	deadline := time.Now().Add(15 * time.Second)
	for b.stats("f").InFlight != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("node b counts %d in flight", b.stats("f").InFlight)
		}
		time.Sleep(50 * time.Millisecond)
	}
	a.ack("f", ds...)
	for b.stats("f").InFlight != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("node b still counts %d in flight after the acks", b.stats("f").InFlight)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestShortenedVisibilityTimeoutExpiresReceipts: when the queue's
// visibility timeout is shortened, the engine redelivers sooner, so older
// receipts expire with the new timeout.
func TestShortenedVisibilityTimeoutExpiresReceipts(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.create("s", Config{VisibilityTimeout: time.Minute})
	f.publish("s", Message{Payload: []byte(`1`)})
	ds := f.receive("s", 1, time.Second)
	if _, _, err := f.c.CreateQueue(f.ctx, "s", Config{VisibilityTimeout: time.Second}); err != nil {
		t.Fatal(err)
	}
	f.clk.skip(2 * time.Second)
	if err := f.c.Ack(f.ctx, "s", receipts(ds...)); !errors.Is(err, ErrReceiptExpired) {
		t.Fatalf("ack past the shortened timeout: %v", err)
	}
}

// TestHoldsAreBounded: past its bound a node refuses receives (busy)
// instead of remembering without limit; settled receipts make room.
func TestHoldsAreBounded(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.c.holds.max = 2
	f.create("b", Config{VisibilityTimeout: time.Minute})
	for range 3 {
		f.publish("b", Message{Payload: []byte(`1`)})
	}
	ds := f.receive("b", 2, time.Second)
	if _, err := f.c.Receive(f.ctx, "b", ReceiveOptions{Max: 1}); !errors.Is(err, ErrBusy) {
		t.Fatalf("a receive past the bound: %v", err)
	}
	if p := apiProblem(ErrBusy); p == nil || p.Status != 503 || p.RetryAfter == 0 {
		t.Fatalf("busy is %+v", p)
	}
	f.ack("b", ds...)
	f.clk.skip(2 * time.Minute) // the acked deliveries are forgotten once their timeout is over
	f.c.holds.sweep(f.c.opts.Clock.Now())
	if got := f.receive("b", 1, time.Second); len(got) != 1 {
		t.Fatalf("after the acks: %d", len(got))
	}
}
