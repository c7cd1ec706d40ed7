package main

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/plexushq/plexus/engine"
)

// rawJS is the limit: plain JetStream on the same embedded engine, a
// work-queue stream on file storage, async publishes awaited per batch,
// pull consumers acking each message.
type rawJS struct {
	eng *engine.Engine
	js  jetstream.JetStream
}

const rawStream, rawSubject = "BENCH_RAW_Q", "bench.rawq"

func (r *rawJS) Name() string { return "raw JetStream" }

func (r *rawJS) Reset(ctx context.Context) error {
	_ = r.js.DeleteStream(ctx, rawStream)
	_, err := r.eng.EnsureStream(ctx, jetstream.StreamConfig{
		Name: rawStream, Subjects: []string{rawSubject}, Retention: jetstream.WorkQueuePolicy,
		Storage: jetstream.FileStorage, MaxMsgs: -1,
	})
	if err != nil {
		return err
	}
	_, err = r.js.CreateOrUpdateConsumer(ctx, rawStream, jetstream.ConsumerConfig{
		Durable: "bench", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second,
		MaxAckPending: 10000,
	})
	return err
}

type rawProducer struct{ js jetstream.JetStream }

func (r *rawJS) NewProducer(ctx context.Context) (producer, error) {
	js, err := jetstream.New(r.eng.Conn(), jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return nil, err
	}
	return &rawProducer{js: js}, nil
}

func (p *rawProducer) PublishBatch(ctx context.Context, payloads [][]byte) error {
	if len(payloads) == 1 {
		_, err := p.js.Publish(ctx, rawSubject, payloads[0])
		return err
	}
	futs := make([]jetstream.PubAckFuture, len(payloads))
	for i, m := range payloads {
		f, err := p.js.PublishAsync(rawSubject, m)
		if err != nil {
			return err
		}
		futs[i] = f
	}
	for _, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (p *rawProducer) Close() {}

func (r *rawJS) Consume(ctx context.Context, n int, handle func([]byte)) (func(), error) {
	cons, err := r.js.Consumer(ctx, rawStream, "bench")
	if err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				batch, err := cons.Fetch(64, jetstream.FetchMaxWait(200*time.Millisecond))
				if err != nil {
					if ctx.Err() == nil && !errors.Is(err, context.Canceled) {
						time.Sleep(10 * time.Millisecond)
					}
					continue
				}
				for m := range batch.Messages() {
					handle(m.Data())
					_ = m.Ack()
				}
			}
		}()
	}
	return wg.Wait, nil
}

func (r *rawJS) Close() {}

var _ broker = (*rawJS)(nil)
