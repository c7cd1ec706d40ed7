package queue

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/plexushq/plexus/internal/enginetest"
)

// lossyJS is the real JetStream client whose first publishes lose their
// acknowledgement: the message reaches the engine, the answer never
// reaches the caller (as when the engine's reply is dropped in a failover).
type lossyJS struct {
	jetstream.JetStream
	lose atomic.Int32
}

func (l *lossyJS) PublishMsg(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	if l.lose.Add(-1) >= 0 {
		if err := l.JetStream.Conn().PublishMsg(m); err != nil { // stored, unanswered
			return nil, err
		}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return l.JetStream.PublishMsg(ctx, m, opts...)
}

// TestPublishLostAckRetriedWithinRequestTimeout: a publish whose
// acknowledgement is lost is sent again after Options.RequestTimeout, even
// when the caller's context allows much longer (a benchmark's 5 minutes
// hung on one lost answer), and the retry stores nothing twice (same id).
func TestPublishLostAckRetriedWithinRequestTimeout(t *testing.T) {
	eng := enginetest.Start(t)
	ljs := &lossyJS{JetStream: eng.JetStream()}
	f := newFixtureOn(t, eng, func(o *Options) { o.RequestTimeout = 200 * time.Millisecond })
	f.c.js = ljs
	f.create("lost", Config{})
	ljs.lose.Store(1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := f.c.Publish(ctx, "lost", Message{ID: "m-1", Payload: []byte(`1`)}); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("publish with a lost ack: %v", err)
		}
	case <-time.After(20 * time.Second): // 100× the request timeout: only a wait on the caller's hour ends here
		t.Fatal("a publish whose ack was lost waited on the caller's context instead of retrying")
	}
	if n := f.stats("lost").QueueSize; n != 1 {
		t.Fatalf("queue size after a retried publish: %d, want 1 (stored once)", n)
	}
}
