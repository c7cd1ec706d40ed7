package queue

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/plexushq/plexus/problem"
)

func (f *fixture) httpClient() *Client {
	f.t.Helper()
	c, err := NewClient(f.server().URL, "", ClientConfig{})
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// TestClientRoundTrip: the HTTP client does what the broker does, through
// the API: options with durations, JSON and text payloads, priorities,
// receipts, extend, ack.
func TestClientRoundTrip(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.httpClient()
	ctx := f.ctx
	info, created, err := c.CreateQueue(ctx, "jobs", Config{RetryDelay: new(time.Duration(0)), TTL: time.Minute, RetryAttempts: 2})
	if err != nil || !created || *info.Config.RetryDelay != 0 || info.Config.TTL != time.Minute {
		t.Fatalf("create: %+v %v %v", info, created, err)
	}
	if _, created, err := c.CreateQueue(ctx, "jobs", Config{RetryDelay: new(time.Duration(0)), TTL: time.Minute, RetryAttempts: 2}); err != nil || created {
		t.Fatalf("update: created %v, %v", created, err)
	}
	if _, err := c.Publish(ctx, "jobs", Message{ID: "low", Payload: []byte("plain text")}); err != nil {
		t.Fatal(err)
	}
	ids, err := c.PublishBatch(ctx, "jobs", []Message{{ID: "high", Payload: []byte(`{"n":1}`), Priority: 9}})
	if err != nil || len(ids) != 1 || ids[0] != "high" {
		t.Fatalf("batch: %v %v", ids, err)
	}
	ds, err := c.Receive(ctx, "jobs", ReceiveOptions{Max: 2, Wait: 5 * time.Second})
	if err != nil || len(ds) != 2 || ds[0].ID != "high" || string(ds[0].Payload) != `{"n":1}` || string(ds[1].Payload) != `"plain text"` {
		t.Fatalf("receive: %v %+v", err, ds)
	}
	fresh, err := c.Extend(ctx, "jobs", []string{ds[0].Receipt, ds[1].Receipt})
	if err != nil || len(fresh) != 2 {
		t.Fatalf("extend: %v %v", fresh, err)
	}
	// An extend's old receipts stay valid until their own deadline
	// (docs/queue.md); acking with the fresh one after it is a repeat.
	if err := c.Ack(ctx, "jobs", []string{ds[0].Receipt}); err != nil {
		t.Fatalf("ack with the receipt before the extend: %v", err)
	}
	if err := c.Ack(ctx, "jobs", fresh); err != nil {
		t.Fatal(err)
	}
	if err := c.Nack(ctx, "jobs", fresh[0], "late", 0); !errors.Is(err, ErrReceiptStale) {
		t.Fatalf("nack of an acked delivery: %v, want ErrReceiptStale", err)
	}
	st, err := c.Stats(ctx, "jobs")
	if err != nil || st.ProcessedMessages+st.QueueSize == 0 && st.QueueSize != 0 {
		t.Fatalf("stats: %+v %v", st, err)
	}
	if list, err := c.List(ctx); err != nil || len(list) != 2 { // jobs and jobs.dlq
		t.Fatalf("list: %d %v", len(list), err)
	}
}

// TestClientErrorsMatchTheBrokers: an error answer matches the sentinel
// the broker would have returned, and carries the problem.
func TestClientErrorsMatchTheBrokers(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.httpClient()
	_, err := c.Stats(f.ctx, "nope")
	var nf *NotFoundError
	if !errors.Is(err, ErrQueueNotFound) || !errors.As(err, &nf) || nf.Queue != "nope" {
		t.Fatalf("unknown queue: %v", err)
	}
	_, _, err = c.CreateQueue(f.ctx, "bad", Config{Overflow: "sometimes"})
	var p *problem.Problem
	if !errors.Is(err, ErrInvalidConfig) || !errors.As(err, &p) || p.Status != 422 {
		t.Fatalf("bad option: %v", err)
	}
	f.create("tiny", Config{MaxSize: 1, Overflow: OverflowReject})
	f.publish("tiny", Message{Payload: []byte(`1`)})
	if _, err := c.Publish(f.ctx, "tiny", Message{Payload: []byte(`2`)}); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("full queue: %v", err)
	}
	if err := c.Ack(f.ctx, "tiny", []string{"forged"}); !errors.Is(err, ErrInvalidReceipt) {
		t.Fatalf("forged receipt: %v", err)
	}
}

// TestClientConsumeAcksAndNacks: Consume acks what the handler handled and
// nacks what it failed; with one attempt, the failed one is dead-lettered,
// and the dead letter comes back with Redrive.
func TestClientConsumeAcksAndNacks(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.httpClient()
	f.create("work", Config{RetryAttempts: 1, RetryDelay: new(time.Duration(0))})
	f.publish("work", Message{ID: "good", Payload: []byte(`"ok"`)})
	f.publish("work", Message{ID: "bad", Payload: []byte(`"boom"`)})
	var mu sync.Mutex
	seen := map[string]int{}
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Consume(ctx, "work", func(_ context.Context, d *Delivery) error {
			mu.Lock()
			seen[d.ID]++
			mu.Unlock()
			if d.ID == "bad" {
				return errors.New("cannot do it")
			}
			return nil
		}, ConsumeOptions{Wait: time.Second, Consumer: "test"})
	}()
	var dls []DeadLetter
	waitUntil(t, 20*time.Second, func() bool {
		var err error
		dls, err = c.DeadLetters(f.ctx, "work", 10)
		return err == nil && len(dls) == 1
	})
	cancel()
	<-done
	if dls[0].ID != "bad" || dls[0].LastError != "cannot do it" || dls[0].Reason != ReasonMaxAttempts {
		t.Fatalf("dead letter %+v", dls[0])
	}
	mu.Lock()
	defer mu.Unlock()
	if seen["good"] != 1 || seen["bad"] != 1 {
		t.Fatalf("handled %v, want each once", seen)
	}
	if st := f.stats("work"); st.QueueSize != 0 || st.ProcessedMessages != 1 {
		t.Fatalf("after consume: %+v", st)
	}
	if n, err := c.Redrive(f.ctx, "work", nil); err != nil || n != 1 {
		t.Fatalf("redrive: %d %v", n, err)
	}
	if err := c.PurgeDeadLetters(f.ctx, "work"); err != nil {
		t.Fatal(err)
	}
}
