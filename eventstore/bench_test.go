package eventstore_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/eventstore"
	"github.com/plexushq/plexus/internal/enginetest"
)

var benchData = []byte(`{"user":"ann","email":"ann@example.com","plan":"pro","seats":12,"note":"a 256-byte-ish event body for benchmarks, padded to a realistic size with some more text here to get there"}`)

// BenchmarkRawJetStreamPublish is the limit: synchronous publishes to the
// same stream, no headers, no checks.
func BenchmarkRawJetStreamPublish(b *testing.B) {
	eng := enginetest.Start(b)
	startStore(b, eng, eventstore.Config{})
	js := eng.JetStream()
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if _, err := js.Publish(ctx, fmt.Sprintf("plexus.events.raw.raw-%d.raw~published", i%100), benchData); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawJetStreamPublishExpected adds the per-subject expectation.
func BenchmarkRawJetStreamPublishExpected(b *testing.B) {
	eng := enginetest.Start(b)
	startStore(b, eng, eventstore.Config{})
	nc := eng.Conn()
	ctx := context.Background()
	b.ReportAllocs()
	var last uint64
	for b.Loop() {
		m := &nats.Msg{Subject: "plexus.events.raw.raw-1.raw~published", Data: benchData, Header: nats.Header{
			"Nats-Expected-Last-Subject-Sequence": {fmt.Sprint(last)},
		}}
		resp, err := nc.RequestMsgWithContext(ctx, m)
		if err != nil {
			b.Fatal(err)
		}
		last++
		_ = resp
	}
}

func BenchmarkAppendExpectedVersion(b *testing.B) {
	s := startStore(b, nil, eventstore.Config{})
	ctx := context.Background()
	e := eventstore.Event{Type: "user.updated", Data: benchData}
	b.ReportAllocs()
	v := int64(0)
	for b.Loop() {
		res, err := s.Append(ctx, "user-1", v, e)
		if err != nil {
			b.Fatal(err)
		}
		v = res.Version
	}
}

func BenchmarkAppendNewStreams(b *testing.B) {
	s := startStore(b, nil, eventstore.Config{})
	ctx := context.Background()
	e := eventstore.Event{Type: "user.created", Data: benchData}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if _, err := s.Append(ctx, fmt.Sprintf("user-%d", i), eventstore.NoStream, e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppend8ConcurrentStreams(b *testing.B) {
	s := startStore(b, nil, eventstore.Config{})
	ctx := context.Background()
	e := eventstore.Event{Type: "user.updated", Data: benchData}
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(4) // 2 cores × 4 = 8 writers
	b.RunParallel(func(pb *testing.PB) {
		stream := fmt.Sprintf("user-p%d", next.Add(1))
		v := int64(0)
		for pb.Next() {
			res, err := s.Append(ctx, stream, v, e)
			if err != nil {
				b.Fatal(err)
			}
			v = res.Version
		}
	})
}

func BenchmarkAppendBatch100(b *testing.B) {
	s := startStore(b, nil, eventstore.Config{})
	ctx := context.Background()
	batch := make([]eventstore.Event, 100)
	for i := range batch {
		batch[i] = eventstore.Event{Type: "user.updated", Data: benchData}
	}
	b.ReportAllocs()
	v := int64(0)
	for b.Loop() {
		res, err := s.Append(ctx, "user-batch", v, batch...)
		if err != nil {
			b.Fatal(err)
		}
		v = res.Version
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkReadAll(b *testing.B) {
	s := startStore(b, nil, eventstore.Config{})
	ctx := context.Background()
	batch := make([]eventstore.Event, 1000)
	for i := range batch {
		batch[i] = eventstore.Event{Type: "user.updated", Data: benchData}
	}
	for i := range 20 {
		if _, err := s.Append(ctx, fmt.Sprintf("user-r%d", i), eventstore.NoStream, batch...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	var n int
	for b.Loop() {
		next := uint64(1)
		for {
			p, err := s.ReadAll(ctx, eventstore.Query{FromPosition: next, Limit: 1000})
			if err != nil {
				b.Fatal(err)
			}
			if len(p.Events) == 0 {
				break
			}
			n += len(p.Events)
			next = p.NextPosition
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkSubscriptionCatchUp(b *testing.B) {
	s := startStore(b, nil, eventstore.Config{})
	ctx := context.Background()
	batch := make([]eventstore.Event, 1000)
	for i := range batch {
		batch[i] = eventstore.Event{Type: "user.updated", Data: benchData}
	}
	const total = 20_000
	for i := range total / 1000 {
		if _, err := s.Append(ctx, fmt.Sprintf("user-c%d", i), eventstore.NoStream, batch...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	g := 0
	for b.Loop() {
		g++
		done := make(chan struct{})
		var n atomic.Int64
		sub, err := s.Subscribe(ctx, fmt.Sprintf("bench-%d", g), func(context.Context, eventstore.Envelope) error {
			if n.Add(1) == total {
				close(done)
			}
			return nil
		}, eventstore.SubscribeOptions{})
		if err != nil {
			b.Fatal(err)
		}
		<-done
		_ = sub.Stop(ctx)
	}
	b.ReportMetric(float64(b.N*total)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkRawConsumerCatchUp is the limit of a catch-up: a raw JetStream
// ordered consumer that only counts the messages (20 appends of 1000).
func BenchmarkRawConsumerCatchUp(b *testing.B) {
	eng := enginetest.Start(b)
	s := startStore(b, eng, eventstore.Config{})
	ctx := context.Background()
	batch := make([]eventstore.Event, 1000)
	for i := range batch {
		batch[i] = eventstore.Event{Type: "user.updated", Data: benchData}
	}
	const total = 20_000
	for i := range total / 1000 {
		if _, err := s.Append(ctx, fmt.Sprintf("user-c%d", i), eventstore.NoStream, batch...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		rawRead(b, eng, total/1000+1) // and the format marker
	}
	b.ReportMetric(float64(b.N*total)/b.Elapsed().Seconds(), "events/s")
}

// rawRead reads n messages of the events stream with an ordered consumer,
// as a raw JetStream reader would (metadata and headers of each).
func rawRead(b *testing.B, eng *engine.Engine, n int) {
	c, err := eng.JetStream().OrderedConsumer(context.Background(), "PLEXUS_EVENTS", jetstream.OrderedConsumerConfig{})
	if err != nil {
		b.Fatal(err)
	}
	it, _ := c.Messages(jetstream.PullMaxMessages(1000))
	defer it.Stop()
	for range n {
		m, err := it.Next()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := m.Metadata(); err != nil {
			b.Fatal(err)
		}
		_ = m.Headers().Get("Nats-Expected-Last-Subject-Sequence")
	}
}

// fillSingles appends n single events from 8 writers.
func fillSingles(b *testing.B, s *eventstore.Store, n int) {
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				if _, err := s.Append(context.Background(), fmt.Sprintf("user-s%d", w), eventstore.AnyVersion,
					eventstore.Event{Type: "user.updated", Data: benchData}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// The three ways to read a store of events appended one at a time (one
// message each), and a raw ordered consumer reading the same messages.
const singlesTotal = 30_000

func BenchmarkReadSinglesPaged(b *testing.B) {
	s := startStore(b, nil, eventstore.Config{})
	fillSingles(b, s, singlesTotal)
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		for next := uint64(1); ; {
			p, err := s.ReadAll(context.Background(), eventstore.Query{FromPosition: next, Limit: 1000})
			if err != nil {
				b.Fatal(err)
			}
			if len(p.Events) == 0 {
				break
			}
			n, next = n+len(p.Events), p.NextPosition
		}
		if n != singlesTotal {
			b.Fatalf("read %d", n)
		}
	}
	b.ReportMetric(float64(b.N*singlesTotal)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkReadSinglesScan(b *testing.B) {
	s := startStore(b, nil, eventstore.Config{})
	fillSingles(b, s, singlesTotal)
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		if err := s.Scan(context.Background(), eventstore.Query{}, func(eventstore.Envelope) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
		if n != singlesTotal {
			b.Fatalf("read %d", n)
		}
	}
	b.ReportMetric(float64(b.N*singlesTotal)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkReadSinglesRaw(b *testing.B) {
	eng := enginetest.Start(b)
	s := startStore(b, eng, eventstore.Config{})
	fillSingles(b, s, singlesTotal)
	b.ReportAllocs()
	for b.Loop() {
		rawRead(b, eng, singlesTotal+1)
	}
	b.ReportMetric(float64(b.N*singlesTotal)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkRawAtomicBatch100 is the limit of a 100-event append: a raw
// JetStream atomic batch of 100 messages.
func BenchmarkRawAtomicBatch100(b *testing.B) {
	eng := enginetest.Start(b)
	startStore(b, eng, eventstore.Config{})
	nc := eng.Conn()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		id := fmt.Sprintf("b%d", i)
		for j := 1; j <= 100; j++ {
			m := &nats.Msg{Subject: "plexus.events.raw.raw-1.raw~published", Data: benchData, Header: nats.Header{
				"Nats-Batch-Id": {id}, "Nats-Batch-Sequence": {fmt.Sprint(j)},
			}}
			if j < 100 {
				if err := nc.PublishMsg(m); err != nil {
					b.Fatal(err)
				}
				continue
			}
			m.Header["Nats-Batch-Commit"] = []string{"1"}
			resp, err := nc.RequestMsg(m, 10*time.Second)
			if err != nil {
				b.Fatal(err)
			}
			if len(resp.Data) == 0 || resp.Data[2] == 'e' {
				b.Fatalf("ack %s", resp.Data)
			}
		}
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAppendVsRaw interleaves a raw JetStream publish and an append
// with an expected version in the same loop, so a loaded machine slows
// both alike; throughput-ratio is append throughput ÷ raw throughput.
func BenchmarkAppendVsRaw(b *testing.B) {
	eng := enginetest.Start(b)
	s := startStore(b, eng, eventstore.Config{})
	js := eng.JetStream()
	ctx := context.Background()
	e := eventstore.Event{Type: "user.updated", Data: benchData}
	var raw, app time.Duration
	v := int64(0)
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		if _, err := js.Publish(ctx, "plexus.events.raw.raw-1.raw~published", benchData); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		res, err := s.Append(ctx, "user-1", v, e)
		if err != nil {
			b.Fatal(err)
		}
		app += time.Since(t1)
		raw += t1.Sub(t0)
		v = res.Version
	}
	b.ReportMetric(float64(raw.Nanoseconds())/float64(b.N), "raw-ns/op")
	b.ReportMetric(float64(app.Nanoseconds())/float64(b.N), "append-ns/op")
	b.ReportMetric(float64(raw)/float64(app), "throughput-ratio")
}

// BenchmarkHTTPScan reads 20 appends of 1000 events over HTTP as NDJSON
// (GET /v1/events, Accept: application/x-ndjson) with Client.Scan.
func BenchmarkHTTPScan(b *testing.B) {
	s := startStore(b, nil, eventstore.Config{})
	batch := make([]eventstore.Event, 1000)
	for i := range batch {
		batch[i] = eventstore.Event{Type: "user.updated", Data: benchData}
	}
	const total = 20_000
	for i := range total / 1000 {
		if _, err := s.Append(context.Background(), fmt.Sprintf("user-h%d", i), eventstore.NoStream, batch...); err != nil {
			b.Fatal(err)
		}
	}
	srv := httptest.NewServer(eventstore.NewAPI(s, eventstore.APIConfig{}).Handler())
	defer srv.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := eventstore.NewClient(srv.URL, "", &http.Client{Transport: tr})
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		if err := c.Scan(context.Background(), eventstore.Query{}, func(eventstore.Envelope) error { n++; return nil }); err != nil || n != total {
			b.Fatal(n, err)
		}
	}
	b.ReportMetric(float64(b.N*total)/b.Elapsed().Seconds(), "events/s")
}
