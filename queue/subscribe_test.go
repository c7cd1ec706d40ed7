package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestSubscribeAcksNacksAndRecoversPanics(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.create("work", Config{RetryAttempts: 2, RetryDelay: new(50 * time.Millisecond)})
	for i := range 20 {
		f.publish("work", Message{ID: fmt.Sprintf("ok-%d", i), Payload: []byte(`1`)})
	}
	f.publish("work", Message{ID: "fails", Payload: []byte(`1`)})
	f.publish("work", Message{ID: "panics", Payload: []byte(`1`)})
	var mu sync.Mutex
	seen := map[string]int{}
	var running, peak atomic.Int32
	sub, err := f.c.Subscribe(f.ctx, "work", func(ctx context.Context, d *Delivery) error {
		n := running.Add(1)
		defer running.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(10 * time.Millisecond)
		mu.Lock()
		seen[d.ID]++
		mu.Unlock()
		switch d.ID {
		case "fails":
			return errors.New("handler said no")
		case "panics":
			panic("handler blew up")
		}
		return nil
	}, SubscribeOptions{Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		dls, _ := f.c.DeadLetters(f.ctx, "work", 10)
		return len(dls) == 2
	})
	if err := sub.Stop(f.ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range 20 {
		if seen[fmt.Sprintf("ok-%d", i)] != 1 {
			t.Fatalf("ok-%d handled %d times", i, seen[fmt.Sprintf("ok-%d", i)])
		}
	}
	if seen["fails"] != 2 || seen["panics"] != 2 {
		t.Fatalf("failing messages handled %d and %d times, want 2 (retryAttempts)", seen["fails"], seen["panics"])
	}
	if peak.Load() < 2 || peak.Load() > 4 {
		t.Fatalf("peak concurrency %d, want 2..4", peak.Load())
	}
	dls, _ := f.c.DeadLetters(f.ctx, "work", 10)
	errs := map[string]string{}
	for _, d := range dls {
		errs[d.ID] = d.LastError
	}
	if errs["fails"] != "handler said no" || errs["panics"] != "panic: handler blew up" {
		t.Fatalf("last errors %v", errs)
	}
	if st := f.stats("work"); st.ProcessedMessages != 20 || st.QueueSize != 0 || st.ActiveConsumers != 0 || st.TotalConsumers != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSubscribeExtendsVisibilityAndStopsGracefully(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.create("slow", Config{VisibilityTimeout: 300 * time.Millisecond})
	f.publish("slow", Message{ID: "long", Payload: []byte(`1`)})
	started := make(chan struct{})
	var calls atomic.Int32
	var finished atomic.Bool
	sub, err := f.c.Subscribe(f.ctx, "slow", func(ctx context.Context, d *Delivery) error {
		calls.Add(1)
		close(started)
		time.Sleep(time.Second) // > 3 visibility timeouts
		finished.Store(true)
		return nil
	}, SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	<-started
	// While the handler runs, nobody else gets the message.
	if ds := f.receive("slow", 1, 700*time.Millisecond); len(ds) != 0 {
		t.Fatalf("message redelivered while being handled: %+v", ds)
	}
	// Stop waits for the running handler.
	if err := sub.Stop(f.ctx); err != nil || !finished.Load() {
		t.Fatalf("stop: %v, finished %v", err, finished.Load())
	}
	if calls.Load() != 1 {
		t.Fatalf("handled %d times", calls.Load())
	}
	waitFor(t, func() bool { return f.stats("slow").QueueSize == 0 })
}

func TestSubscribeStopBoundedByContext(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.create("stuck", Config{})
	f.publish("stuck", Message{Payload: []byte(`1`)})
	started := make(chan struct{})
	sub, err := f.c.Subscribe(f.ctx, "stuck", func(ctx context.Context, d *Delivery) error {
		close(started)
		<-ctx.Done() // only ends when Stop gives up
		return ctx.Err()
	}, SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	<-started
	ctx, cancel := context.WithTimeout(f.ctx, 200*time.Millisecond)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- sub.Stop(ctx) }()
	select { // the handler never ends by itself: only ctx can end Stop
	case err := <-stopped:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("stop: %v, want the context's deadline", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Stop did not return when its context ended")
	}
	time.Sleep(100 * time.Millisecond) // the cancelled handler returns and its worker ends
}

func TestTraceContextTravelsWithMessages(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	f.c.tracer, f.c.spans = tp.Tracer("test"), true
	f.create("traced", Config{})
	ctx, parent := tp.Tracer("test").Start(f.ctx, "request")
	if _, err := f.c.Publish(ctx, "traced", Message{Payload: []byte(`1`)}); err != nil {
		t.Fatal(err)
	}
	parent.End()
	got := make(chan trace.SpanContext, 1)
	sub, err := f.c.Subscribe(f.ctx, "traced", func(ctx context.Context, d *Delivery) error {
		if d.Headers["traceparent"] == "" {
			t.Errorf("no traceparent header: %v", d.Headers)
		}
		got <- trace.SpanContextFromContext(ctx)
		return nil
	}, SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sc := <-got
	if err := sub.Stop(f.ctx); err != nil {
		t.Fatal(err)
	}
	if sc.TraceID() != parent.SpanContext().TraceID() {
		t.Fatalf("handler trace %s, producer trace %s", sc.TraceID(), parent.SpanContext().TraceID())
	}
	var producer, consumer sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		switch s.SpanKind() {
		case trace.SpanKindProducer:
			producer = s
		case trace.SpanKindConsumer:
			consumer = s
		}
	}
	if producer == nil || consumer == nil || len(consumer.Links()) != 1 ||
		consumer.Links()[0].SpanContext.SpanID() != producer.SpanContext().SpanID() {
		t.Fatalf("producer %v consumer %v", producer, consumer)
	}
}

func TestPublishAsyncFutures(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.create("async", Config{MaxSize: 100})
	futs := make([]*Future, 50)
	for i := range futs {
		futs[i] = f.c.PublishAsync(f.ctx, "async", Message{Payload: []byte(`1`)})
	}
	for _, fu := range futs {
		if err := fu.Wait(f.ctx); err != nil || fu.ID() == "" {
			t.Fatal(err)
		}
	}
	if bad := f.c.PublishAsync(f.ctx, "async", Message{Payload: []byte(`1`), Priority: 11}); !errors.Is(bad.Wait(f.ctx), ErrInvalidMessage) {
		t.Fatal("invalid message accepted")
	}
	if st := f.stats("async"); st.QueueSize != 50 {
		t.Fatalf("size %d", st.QueueSize)
	}
}

func TestSubscribeEndsWithItsContext(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.create("ctxq", Config{})
	ctx, cancel := context.WithCancel(f.ctx)
	sub, err := f.c.Subscribe(ctx, "ctxq", func(context.Context, *Delivery) error { return nil }, SubscribeOptions{Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-sub.workersDone:
	case <-time.After(5 * time.Second):
		t.Fatal("subscription still running after its context ended")
	}
	if err := sub.Stop(f.ctx); err != nil {
		t.Fatal(err)
	}
}

func TestMetricsExported(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	reg := prometheus.NewRegistry()
	c, err := New(f.ctx, f.c.js, Options{Metrics: reg, Logger: f.c.log})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, _, err := c.CreateQueue(f.ctx, "m", Config{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(f.ctx, "m", Message{Payload: []byte(`1`)}); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "plexus_queue_published_messages_total" {
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == "m" && m.GetCounter().GetValue() == 1 {
					return
				}
			}
		}
	}
	t.Fatalf("plexus_queue_published_messages_total{queue=\"m\"} 1 not among %d families", len(mfs))
}
