package queue

import (
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/plexushq/plexus/clock"
	"strings"
	"testing"
	"time"
)

func TestNackRetriesThenDeadLetters(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.create("retry", Config{RetryAttempts: 3, RetryDelay: new(100 * time.Millisecond)})
	id := f.publish("retry", Message{Payload: []byte(`"x"`), Priority: 4, Headers: map[string]string{"K": "v"}})
	for attempt := 1; attempt <= 3; attempt++ {
		start := time.Now()
		ds := f.receive("retry", 1, 3*time.Second)
		if len(ds) != 1 || ds[0].Attempts != attempt {
			t.Fatalf("attempt %d: got %+v", attempt, ds)
		}
		if attempt > 1 && time.Since(start) < 50*time.Millisecond {
			t.Fatalf("retry %d came before the retry delay", attempt)
		}
		if err := f.c.Nack(f.ctx, "retry", ds[0].Receipt, fmt.Sprintf("boom %d", attempt), 0); err != nil {
			t.Fatal(err)
		}
	}
	if ds := f.receive("retry", 1, 300*time.Millisecond); len(ds) != 0 {
		t.Fatalf("delivered after the last attempt: %+v", ds)
	}
	dls, err := f.c.DeadLetters(f.ctx, "retry", 10)
	if err != nil || len(dls) != 1 {
		t.Fatalf("dead letters %v %+v", err, dls)
	}
	d := dls[0]
	if d.ID != id || d.Reason != ReasonMaxAttempts || d.Attempts != 3 || d.LastError != "boom 3" ||
		d.OriginalQueue != "retry" || d.Priority != 4 || d.Headers["K"] != "v" || string(d.Payload) != `"x"` || d.Timestamp.IsZero() {
		t.Fatalf("dead letter %+v", d)
	}
	st := f.stats("retry")
	if st.DeadLetterQueueSize != 1 || st.QueueSize != 0 || st.ErrorMessages != 3 {
		t.Fatalf("stats %+v", st)
	}
	// Redrive by id puts it back with its priority; purge empties the DLQ.
	if n, err := f.c.Redrive(f.ctx, "retry", []string{"other"}); err != nil || n != 0 {
		t.Fatalf("redrive other: %d %v", n, err)
	}
	if n, err := f.c.Redrive(f.ctx, "retry", []string{id}); err != nil || n != 1 {
		t.Fatalf("redrive: %d %v", n, err)
	}
	ds := f.receive("retry", 1, time.Second)
	if len(ds) != 1 || ds[0].ID != id || ds[0].Priority != 4 || ds[0].Attempts != 1 {
		t.Fatalf("redriven %+v", ds)
	}
	f.ack("retry", ds...)
	if dls, _ := f.c.DeadLetters(f.ctx, "retry", 10); len(dls) != 0 {
		t.Fatalf("dead letters after redrive %+v", dls)
	}
}

func TestVisibilityTimeoutRedeliversAndCountsAttempt(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// A timeout long enough for the steps below to run under load: the
	// receipts' deadline is 95 % of it.
	f.create("vis", Config{RetryAttempts: 2, VisibilityTimeout: time.Second})
	id := f.publish("vis", Message{Payload: []byte(`1`)})
	ds := f.receive("vis", 1, time.Second)
	if len(ds) != 1 {
		t.Fatal("no delivery")
	}
	if again := f.receive("vis", 1, 100*time.Millisecond); len(again) != 0 {
		t.Fatal("visible while in flight")
	}
	// Not acked: after the timeout it is redelivered as attempt 2.
	ds = f.receive("vis", 1, 3*time.Second)
	if len(ds) != 1 || ds[0].ID != id || ds[0].Attempts != 2 {
		t.Fatalf("redelivery %+v", ds)
	}
	// Extending keeps it invisible past its timeout; each extension gives a
	// fresh receipt and the old one expires with the old timeout.
	receipt := ds[0].Receipt
	for range 3 {
		time.Sleep(400 * time.Millisecond)
		fresh, err := f.c.Extend(f.ctx, "vis", []string{receipt})
		if err != nil {
			t.Fatal(err)
		}
		receipt = fresh[0]
	}
	if err := f.c.Ack(f.ctx, "vis", []string{ds[0].Receipt}); !errors.Is(err, ErrReceiptExpired) || apiProblem(err).Status != 409 {
		t.Fatalf("stale receipt: %v", err)
	}
	if again := f.receive("vis", 1, 0); len(again) != 0 {
		t.Fatal("extended message was redelivered")
	}
	// The last attempt times out too: the next fetch dead-letters it.
	if again := f.receive("vis", 1, 3*time.Second); len(again) != 0 {
		t.Fatalf("third delivery with retryAttempts 2: %+v", again)
	}
	waitFor(t, func() bool {
		dls, _ := f.c.DeadLetters(f.ctx, "vis", 10)
		return len(dls) == 1 && dls[0].Reason == ReasonMaxAttempts && dls[0].LastError == "visibility timeout expired" && dls[0].Attempts == 2
	})
}

func TestTTLExpiresOnFetchAndWhileWaiting(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.create("ttl", Config{TTL: time.Minute})
	f.publish("ttl", Message{ID: "old1", Payload: []byte(`1`)})
	f.publish("ttl", Message{ID: "old2", Payload: []byte(`1`), Priority: 3})
	f.clk.skip(2 * time.Minute) // the injected clock moves past the ttl
	f.publish("ttl", Message{ID: "fresh", Payload: []byte(`2`)})
	// old2 is dead-lettered by housekeeping without any receiver.
	if err := f.c.Maintain(f.ctx); err != nil {
		t.Fatal(err)
	}
	dls, _ := f.c.DeadLetters(f.ctx, "ttl", 10)
	if len(dls) != 2 || dls[0].Reason != ReasonExpired || dls[1].Reason != ReasonExpired {
		t.Fatalf("after maintain %+v", dls)
	}
	ds := f.receive("ttl", 10, 500*time.Millisecond)
	if len(ds) != 1 || ds[0].ID != "fresh" {
		t.Fatalf("receive %+v", ds)
	}
	f.ack("ttl", ds...)
	// A message already delivered once (so housekeeping skips it) expires at its next fetch.
	f.publish("ttl", Message{ID: "retried", Payload: []byte(`3`)})
	ds = f.receive("ttl", 1, time.Second)
	if err := f.c.Nack(f.ctx, "ttl", ds[0].Receipt, "later", time.Millisecond); err != nil {
		t.Fatal(err)
	}
	f.clk.skip(4 * time.Minute)
	if ds := f.receive("ttl", 1, 300*time.Millisecond); len(ds) != 0 {
		t.Fatalf("expired message delivered: %+v", ds)
	}
	dls, _ = f.c.DeadLetters(f.ctx, "ttl", 10)
	if len(dls) != 3 || dls[2].ID != "retried" || dls[2].Reason != ReasonExpired || dls[2].LastError != "later" {
		t.Fatalf("dead letters %+v", dls)
	}
}

func TestOverflowDropOldestDeadLetters(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.create("small", Config{MaxSize: 3})
	for i := range 5 {
		f.publish("small", Message{ID: fmt.Sprintf("m%d", i), Payload: []byte(`1`)})
	}
	if st := f.stats("small"); st.QueueSize != 3 {
		t.Fatalf("size %d", st.QueueSize)
	}
	dls, _ := f.c.DeadLetters(f.ctx, "small", 10)
	if len(dls) != 2 || dls[0].ID != "m0" || dls[1].ID != "m1" || dls[0].Reason != ReasonOverflow {
		t.Fatalf("dead letters %+v", dls)
	}
	ds := f.receive("small", 10, 0)
	if len(ds) != 3 || ds[0].ID != "m2" {
		t.Fatalf("kept %+v", ds)
	}
}

func TestOverflowRejectIsQueueFull(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.create("strict", Config{MaxSize: 2, Overflow: OverflowReject})
	f.publish("strict", Message{Payload: []byte(`1`)})
	f.publish("strict", Message{Payload: []byte(`1`), Delay: time.Hour})
	_, err := f.c.Publish(f.ctx, "strict", Message{Payload: []byte(`1`)})
	if !errors.Is(err, ErrQueueFull) || apiProblem(err).Status != 507 {
		t.Fatalf("err %v", err)
	}
	if st := f.stats("strict"); st.QueueSize != 1 || st.Delayed != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDuplicateIDStoredOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.create("dedupe", Config{})
	a := f.publish("dedupe", Message{ID: "order-1", Payload: []byte(`1`)})
	b := f.publish("dedupe", Message{ID: "order-1", Payload: []byte(`1`)})
	ids, err := f.c.PublishBatch(f.ctx, "dedupe", []Message{{ID: "order-1", Payload: []byte(`1`)}, {ID: "order-2", Payload: []byte(`2`)}})
	if err != nil || a != "order-1" || b != "order-1" || ids[1] != "order-2" {
		t.Fatalf("ids %q %q %v %v", a, b, ids, err)
	}
	if st := f.stats("dedupe"); st.QueueSize != 2 {
		t.Fatalf("stored %d, want 2", st.QueueSize)
	}
}

func TestConfigChangeApplied(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	_, created, err := f.c.CreateQueue(f.ctx, "cfg", Config{})
	if err != nil || !created {
		t.Fatal(err, created)
	}
	info, created, err := f.c.CreateQueue(f.ctx, "cfg", Config{MaxSize: 1, Overflow: OverflowReject, VisibilityTimeout: time.Second})
	if err != nil || created || info.Config.MaxSize != 1 || info.Config.DeadLetterQueue != "cfg.dlq" {
		t.Fatalf("update %v %v %+v", err, created, info)
	}
	f.publish("cfg", Message{Payload: []byte(`1`)})
	if _, err := f.c.Publish(f.ctx, "cfg", Message{Payload: []byte(`1`)}); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("new maxSize not applied: %v", err)
	}
	ci, err := f.c.queues["cfg"].consumerInfo(f.ctx, 0)
	if err != nil || ci.Config.AckWait != time.Second {
		t.Fatalf("ack wait %v %v", ci.Config.AckWait, err)
	}
	if _, _, err := f.c.CreateQueue(f.ctx, "cfg", Config{Overflow: "sometimes"}); err == nil || apiProblem(err).Status != 422 {
		t.Fatalf("bad overflow accepted: %v", err)
	}
	if st := f.stats("cfg"); st.Config.MaxSize != 1 {
		t.Fatalf("bad input changed the queue: %+v", st.Config)
	}
}

func TestForgedReceiptRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.create("a", Config{})
	f.create("b", Config{})
	f.publish("a", Message{ID: "victim", Payload: []byte(`1`)})
	ds := f.receive("a", 1, time.Second)
	good := ds[0].Receipt
	forged := []string{
		"", "nodot", "!!!.???", good + "x", good[:len(good)-2] + "AA", good + ".AA", "..", strings.Replace(good, ".", "..", 1),
		f.c.seal("a", receiptMeta{reply: "$JS.ACK.OTHER.p0.1.1.1.1.0", deadline: time.Now().Add(time.Hour)}),
		f.c.seal("b", receiptMeta{reply: replyOf(good), deadline: time.Now().Add(time.Hour)}), // a's message, signed for b
		strings.Replace(good, strings.Split(good, ".")[1], "AAAAAAAAAAA", 1),                  // deadline moved
	}
	for _, r := range forged {
		if err := f.c.Ack(f.ctx, "a", []string{r}); !errors.Is(err, ErrInvalidReceipt) {
			t.Fatalf("forged %q: %v", r, err)
		}
	}
	// A genuine receipt of queue a does not work on queue b.
	if err := f.c.Ack(f.ctx, "b", []string{good}); !errors.Is(err, ErrInvalidReceipt) {
		t.Fatalf("cross-queue: %v", err)
	}
	if err := f.c.Nack(f.ctx, "a", forged[4], "x", 0); !errors.Is(err, ErrInvalidReceipt) {
		t.Fatalf("forged nack: %v", err)
	}
	if st := f.stats("a"); st.InFlight != 1 || st.QueueSize != 1 {
		t.Fatalf("a forged receipt changed state: %+v", st)
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	c := Config{RetryDelay: new(time.Second), RetryBackoff: BackoffExponential}
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 40: maxBackoff} {
		lo, hi := c.backoff(n, func() float64 { return 0 }), c.backoff(n, func() float64 { return 1 })
		if lo != want*8/10 || hi != want*12/10 {
			t.Fatalf("attempt %d: %s..%s, want %s±20%%", n, lo, hi, want)
		}
	}
	c.RetryBackoff = BackoffFixed
	if d := c.backoff(5, func() float64 { return 1 }); d != time.Second {
		t.Fatalf("fixed %s", d)
	}
}

func TestTokenNoCollisions(t *testing.T) {
	t.Parallel()
	seen := map[string]string{}
	for _, n := range []string{"a", "a.b", "a_b", "a-b", "A.b", "orders", "orders.dlq", "orders_dlq", "x.y.z"} {
		tok := token(n)
		if prev, ok := seen[tok]; ok {
			t.Fatalf("%q and %q share %q", prev, n, tok)
		}
		seen[tok] = n
	}
}

func replyOf(receipt string) string {
	b, _ := base64.RawURLEncoding.DecodeString(strings.Split(receipt, ".")[0])
	return string(b)
}

// FuzzReceiptOpen: a sealed receipt opens to what was sealed; anything
// else opens to ErrInvalidReceipt (a forgery would need the key), never a
// panic.
func FuzzReceiptOpen(f *testing.F) {
	key := []byte("0123456789abcdef0123456789abcdef")
	b := &Broker{opts: Options{Clock: clock.Or(nil)}}
	b.key.Store(&key)
	q := &qstate{n: namesFor("a")}
	f.Add("$JS.ACK."+q.n.stream+".p0.1.2.3.1700000000000000000.0", "junk")
	f.Add("$JS.ACK."+q.n.stream+".p3.7.9.9.1.5", "a.b.c")
	f.Add("$JS.ACK.OTHER.p0.1.2.3.1.0", "..")
	f.Fuzz(func(t *testing.T, reply, junk string) {
		r := b.seal("a", receiptMeta{reply: reply, deadline: time.Now().Add(time.Hour), issuer: 42, vt: time.Minute})
		ref, err := b.open(q, r)
		if md, ok := parseAck(reply); ok && md.stream == q.n.stream && len(md.consumer) == 2 && md.consumer[0] == 'p' {
			if err != nil || ref.reply != reply || ref.issuer != 42 || ref.vt != time.Minute || ref.seq != md.seq || ref.receipt != r {
				t.Fatalf("sealed %q: opened %+v, %v", reply, ref, err)
			}
		} else if !errors.Is(err, ErrInvalidReceipt) {
			t.Fatalf("sealed %q for no delivery of the queue: %v", reply, err)
		}
		if _, err := b.open(q, junk); !errors.Is(err, ErrInvalidReceipt) {
			t.Fatalf("junk %q: %v", junk, err)
		}
	})
}
