package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plexushq/plexus/bench/internal/benchutil"
)

// broker is one system under test. Each run gets a fresh, empty queue.
type broker interface {
	Name() string
	// Reset creates (or empties) the queue the run uses.
	Reset(ctx context.Context) error
	// NewProducer returns one producer; the driver uses it from one goroutine.
	NewProducer(ctx context.Context) (producer, error)
	// Consume runs n competing consumers calling handle for every message and
	// acknowledging it individually afterwards, until ctx ends.
	Consume(ctx context.Context, n int, handle func(payload []byte)) (wait func(), err error)
	Close()
}

// producer publishes batches and returns when the broker has stored (and
// confirmed) every message of the batch. Brokers pipeline within a batch.
type producer interface {
	PublishBatch(ctx context.Context, payloads [][]byte) error
	Close()
}

// runSpec is one measured run.
type runSpec struct {
	producers, consumers int
	messages             int           // total, throughput mode
	size                 int           // payload bytes
	batch                int           // messages per PublishBatch (the pipelining window)
	inFlight             int           // closed-loop bound on published-not-consumed
	rate                 int           // > 0: latency mode, messages/s in total, batch 1
	duration             time.Duration // latency mode length
}

// tally checks off consumed messages and records their latency.
type tally struct {
	total    int
	closed   bool // closed loop: every consume returns a credit
	credits  chan struct{}
	seen     []atomic.Bool
	consumed atomic.Int64
	dup      atomic.Int64
	done     chan struct{}
	mu       sync.Mutex
	rec      benchutil.Recorder
}

func newTally(total int, sp runSpec) *tally {
	return &tally{total: total, closed: sp.rate == 0, credits: make(chan struct{}, max(sp.inFlight, 1)),
		seen: make([]atomic.Bool, total), done: make(chan struct{})}
}

// handle is the consumers' callback: payload bytes 0-7 are the publish
// time, 8-15 the sequence number.
func (t *tally) handle(p []byte) {
	now := time.Now().UnixNano()
	if len(p) < 16 {
		return
	}
	seq := binary.LittleEndian.Uint64(p[8:])
	if seq < uint64(t.total) && t.seen[seq].Swap(true) {
		t.dup.Add(1)
		return
	}
	t.mu.Lock()
	t.rec.Add(time.Duration(now - int64(binary.LittleEndian.Uint64(p))))
	t.mu.Unlock()
	if t.closed {
		<-t.credits
	}
	if t.consumed.Add(1) == int64(t.total) {
		close(t.done)
	}
}

// runOnce measures one broker: msgs/s from the first publish to the last
// consume, and publish→consume latency from a timestamp in the payload.
func runOnce(ctx context.Context, b broker, sp runSpec) (benchutil.Result, error) {
	ctx, stop := context.WithTimeout(ctx, 5*time.Minute)
	defer stop()
	if err := b.Reset(ctx); err != nil {
		return benchutil.Result{}, fmt.Errorf("%s reset: %w", b.Name(), err)
	}
	total := sp.messages
	if sp.rate > 0 {
		total = int(float64(sp.rate) * sp.duration.Seconds())
	}
	prods := make([]producer, sp.producers)
	for i := range prods {
		p, err := b.NewProducer(ctx)
		if err != nil {
			return benchutil.Result{}, fmt.Errorf("%s producer: %w", b.Name(), err)
		}
		defer p.Close()
		prods[i] = p
	}
	t := newTally(total, sp)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wait, err := b.Consume(cctx, sp.consumers, t.handle)
	if err != nil {
		return benchutil.Result{}, fmt.Errorf("%s consume: %w", b.Name(), err)
	}
	defer wait()
	defer cancel() // runs before wait: consumers stop first
	start := time.Now()
	if err := publishAll(cctx, prods, sp, total, t.credits); err != nil {
		return benchutil.Result{}, fmt.Errorf("%s publish: %w", b.Name(), err)
	}
	limit := 60 * time.Second
	select {
	case <-t.done:
	case <-time.After(limit):
		return benchutil.Result{}, fmt.Errorf("%s: only %d of %d messages consumed %s after publishing ended",
			b.Name(), t.consumed.Load(), total, limit)
	case <-ctx.Done():
		return benchutil.Result{}, ctx.Err()
	}
	elapsed := time.Since(start)
	var lat benchutil.Latencies
	t.mu.Lock()
	lat.Merge(&t.rec)
	t.mu.Unlock()
	ps := lat.Percentiles(0.5, 0.99)
	return benchutil.Result{Name: b.Name(), Rate: float64(total) / elapsed.Seconds(), P50: ps[0], P99: ps[1],
		Errors: t.dup.Load(), Note: fmt.Sprintf("%d msgs in %s", total, elapsed.Round(time.Millisecond))}, nil
}

// publishAll runs the producers until total messages are published.
func publishAll(ctx context.Context, prods []producer, sp runSpec, total int, credits chan struct{}) error {
	errs := make(chan error, len(prods))
	var next atomic.Int64
	var wg sync.WaitGroup
	for i, p := range prods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- produce(ctx, p, sp, i, total, &next, credits)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// produce publishes this producer's share: batches of sp.batch under the
// closed-loop credit bound, or single messages at a fixed rate.
func produce(ctx context.Context, p producer, sp runSpec, id, total int, next *atomic.Int64, credits chan struct{}) error {
	batch := sp.batch
	var tick *time.Ticker
	if sp.rate > 0 {
		batch = 1
		tick = time.NewTicker(time.Duration(float64(time.Second) * float64(sp.producers) / float64(sp.rate)))
		defer tick.Stop()
	}
	buf := make([][]byte, 0, batch)
	for {
		if tick != nil {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		buf = buf[:0]
		for range batch {
			seq := next.Add(1) - 1
			if seq >= int64(total) {
				break
			}
			if tick == nil {
				select {
				case credits <- struct{}{}:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			m := make([]byte, sp.size)
			binary.LittleEndian.PutUint64(m, uint64(time.Now().UnixNano()))
			binary.LittleEndian.PutUint64(m[8:], uint64(seq))
			for i := 16; i < len(m); i++ {
				m[i] = byte('a' + (i+id)%26)
			}
			buf = append(buf, m)
		}
		if len(buf) == 0 {
			return nil
		}
		if err := p.PublishBatch(ctx, buf); err != nil {
			return err
		}
	}
}
