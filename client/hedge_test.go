package client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plexushq/plexus/balance"
)

// stuckBackend never answers: it holds each request until the request is
// cancelled (a hedge loser) or the test ends, and counts both.
func stuckBackend(t *testing.T, id string) (b *backend, cancelled *atomic.Int64) {
	t.Helper()
	release := make(chan struct{})
	cancelled = new(atomic.Int64)
	b = newBackend(t, id, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			cancelled.Add(1)
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // runs before the server's Close, which waits for handlers
	return b, cancelled
}

func named(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, name) }
}

// TestHedgingAnswersFromAnotherInstance: with one instance that never
// answers, every GET whose first attempt goes there is answered by a hedge
// to the other instance, and the stuck attempt is cancelled. No latency is
// measured: a call that was not hedged would never be answered, and fails
// at its (generous) deadline.
func TestHedgingAnswersFromAnotherInstance(t *testing.T) {
	t.Parallel()
	stuck, cancelled := stuckBackend(t, "a")
	fast := newBackend(t, "b", named("b"))
	hedged := newClient(t, snapshot(stuck, fast), Config{Strategy: balance.RoundRobin, Breaker: noBreaker,
		Hedge: HedgePolicy{Percentile: 0.9, MinDelay: 5 * time.Millisecond, Budget: 1}})
	const calls = 40
	for i := range calls {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		resp, err := hedged.Call(ctx, "svc", "GET", "/", nil)
		cancel()
		if err != nil {
			t.Fatalf("call %d: %v (its first attempt went to the stuck instance and was not hedged)", i, err)
		}
		if string(resp.Body) != "b" {
			t.Fatalf("call %d answered by %q, want b", i, resp.Body)
		}
	}
	first := stuck.hits.Load()
	if first < calls/4 {
		t.Fatalf("setup: round robin sent only %d of %d first attempts to the stuck instance", first, calls)
	}
	if got := fast.hits.Load(); got != calls {
		t.Errorf("the answering instance got %d requests, want one per call (%d)", got, calls)
	}
	deadline := time.Now().Add(10 * time.Second)
	for cancelled.Load() < first && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if cancelled.Load() != first {
		t.Errorf("%d of %d hedged-over attempts were cancelled", cancelled.Load(), first)
	}
}

// TestNoHedgingWaitsForTheStuckInstance is the control: without hedging,
// a GET whose attempt went to the stuck instance is not answered before
// its deadline.
func TestNoHedgingWaitsForTheStuckInstance(t *testing.T) {
	t.Parallel()
	stuck, _ := stuckBackend(t, "a")
	fast := newBackend(t, "b", named("b"))
	plain := newClient(t, snapshot(stuck, fast), Config{Strategy: balance.RoundRobin, Breaker: noBreaker})
	timedOut := 0
	for range 2 { // round robin: one of the two goes to the stuck instance
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		_, err := plain.Call(ctx, "svc", "GET", "/", nil)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			timedOut++
		}
	}
	if timedOut == 0 || stuck.hits.Load() == 0 {
		t.Fatalf("no call waited for the stuck instance (%d timed out, %d reached it)", timedOut, stuck.hits.Load())
	}
}

// slowOnce answers every request, each one later than the hedge delay
// (MinDelay 1ms), so that a hedged client would hedge every call.
func slowOnce() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(20 * time.Millisecond):
			w.WriteHeader(200)
		case <-r.Context().Done():
		}
	}
}

func TestHedgingNotForPost(t *testing.T) {
	t.Parallel()
	a, b := newBackend(t, "a", slowOnce()), newBackend(t, "b", slowOnce())
	c := newClient(t, snapshot(a, b), Config{Hedge: HedgePolicy{Percentile: 0.5, MinDelay: time.Millisecond, Budget: 1}})
	for range 30 {
		if _, err := c.Call(context.Background(), "svc", "POST", "/", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if n := a.hits.Load() + b.hits.Load(); n != 30 {
		t.Fatalf("POST was hedged: %d hits for 30 calls", n)
	}
}

func TestLatencyHistQuantile(t *testing.T) {
	t.Parallel()
	h := newLatencyHist()
	if _, ok := h.quantile(0.9); ok {
		t.Fatal("quantile without samples")
	}
	for i := range 100 {
		h.observe(time.Duration(i+1) * time.Millisecond)
	}
	q, _ := h.quantile(0.9)
	if q < 85*time.Millisecond || q > 100*time.Millisecond {
		t.Fatalf("p90 of 1..100ms = %v", q)
	}
}
