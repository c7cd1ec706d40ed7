package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/plexushq/plexus/bench/internal/benchutil"
)

// store is one system under test.
type store interface {
	Name() string
	// Append appends events (JSON data) to stream when its version is
	// expected (0 = no stream yet); all or none.
	Append(ctx context.Context, stream string, expected int64, data [][]byte) error
	// ReadAll reads every event in global order, decoding each, and
	// returns how many it read.
	ReadAll(ctx context.Context) (int, error)
	// CatchUp starts a new subscriber group from the beginning and returns
	// once it has handled (and checkpointed) want events.
	CatchUp(ctx context.Context, group string, want int) error
	Close()
}

// counter is a store that owns its storage and can count its events.
type counter interface {
	Count(ctx context.Context) (int, error)
}

// sharer is a view of another system's store (read differently).
type sharer interface {
	shares() store
}

// errSkip marks a phase a system does not run.
var errSkip = errors.New("skipped")

// eventData is a typical small event body (~150 bytes).
func eventData(i int) []byte {
	return fmt.Appendf(nil, `{"userId":"user-%08d","email":"user%08d@example.com","name":"Ada Lovelace","plan":"pro","signupSource":"web","n":%d}`, i, i, i)
}

// appendLoop appends n single events (or batches of batch events) to one
// stream with an exact expected version, recording each call's latency.
func appendLoop(ctx context.Context, s store, stream string, n, batch int, rec *benchutil.Recorder) error {
	var version int64
	for i := 0; i < n; i += batch {
		data := make([][]byte, min(batch, n-i))
		for j := range data {
			data[j] = eventData(i + j)
		}
		t0 := time.Now()
		if err := s.Append(ctx, stream, version, data); err != nil {
			return fmt.Errorf("%s append %s@%d: %w", s.Name(), stream, version, err)
		}
		rec.Add(time.Since(t0))
		version += int64(len(data))
	}
	return nil
}

// appendPhase runs writers goroutines, each appending n events in calls of
// batch events to its own stream; the rate is events per second.
func appendPhase(ctx context.Context, s store, prefix string, writers, n, batch int) (benchutil.Result, error) {
	var lat benchutil.Latencies
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var rec benchutil.Recorder
			errs <- appendLoop(ctx, s, fmt.Sprintf("%s-%d", prefix, w), n, batch, &rec)
			lat.Merge(&rec)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		if err != nil {
			return benchutil.Result{}, err // errSkip included
		}
	}
	ps := lat.Percentiles(0.5, 0.99)
	total := writers * n
	return benchutil.Result{Name: s.Name(), Rate: float64(total) / elapsed.Seconds(), P50: ps[0], P99: ps[1],
		Note: fmt.Sprintf("%d events in %s", total, elapsed.Round(time.Millisecond))}, nil
}

// timed measures one bulk operation of n events.
func timed(name string, n int, f func() (int, error)) (benchutil.Result, error) {
	start := time.Now()
	got, err := f()
	if err != nil {
		return benchutil.Result{}, err
	}
	if n > 0 && got != n {
		return benchutil.Result{}, fmt.Errorf("%s: %d events, want %d", name, got, n)
	}
	elapsed := time.Since(start)
	return benchutil.Result{Name: name, Rate: float64(got) / elapsed.Seconds(),
		Note: fmt.Sprintf("%d events in %s", got, elapsed.Round(time.Millisecond))}, nil
}
