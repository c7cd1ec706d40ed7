package queue

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/plexushq/plexus/internal/enginetest"
)

var payload256 = make([]byte, 256)

// BenchmarkRawJetStream is the limit: async publishes with one wait per
// 100, and a pull consumer fetching 100 at a time with an ack each, on a
// work-queue stream of the same embedded engine. One op = one message
// published and consumed.
func BenchmarkRawJetStream(b *testing.B) {
	eng := enginetest.Start(b)
	js := eng.JetStream()
	ctx := context.Background()
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RAW", Subjects: []string{"raw.>"}, Retention: jetstream.WorkQueuePolicy})
	if err != nil {
		b.Fatal(err)
	}
	cons, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(256)
	b.ResetTimer()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for got := 0; got < b.N; {
			batch, err := cons.Fetch(100, jetstream.FetchMaxWait(time.Second))
			if err != nil {
				b.Error(err)
				return
			}
			for m := range batch.Messages() {
				_ = m.Ack()
				got++
			}
		}
	}()
	for i := 0; i < b.N; i += 100 {
		for j := i; j < min(i+100, b.N); j++ {
			if _, err := js.PublishAsync("raw.0", payload256); err != nil {
				b.Fatal(err)
			}
		}
		<-js.PublishAsyncComplete()
	}
	<-done
}

// BenchmarkSDK is the same through the Plexus SDK: PublishBatch of 100 and
// a Subscribe with 4 workers that acks on return.
func BenchmarkSDK(b *testing.B) {
	eng := enginetest.Start(b)
	ctx := context.Background()
	c, err := New(ctx, eng.JetStream(), Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if _, _, err := c.CreateQueue(ctx, "bench", Config{MaxSize: 10_000_000}); err != nil {
		b.Fatal(err)
	}
	var got atomic.Int64
	done := make(chan struct{})
	n := int64(b.N)
	b.ReportAllocs()
	b.SetBytes(256)
	b.ResetTimer()
	sub, err := c.Subscribe(ctx, "bench", func(context.Context, *Delivery) error {
		if got.Add(1) == n {
			close(done)
		}
		return nil
	}, SubscribeOptions{Concurrency: 4, Prefetch: 100})
	if err != nil {
		b.Fatal(err)
	}
	msgs := make([]Message, 100)
	for i := range msgs {
		msgs[i] = Message{Payload: payload256}
	}
	for i := 0; i < b.N; i += 100 {
		if _, err := c.PublishBatch(ctx, "bench", msgs[:min(100, b.N-i)]); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	b.StopTimer()
	_ = sub.Stop(ctx)
}
