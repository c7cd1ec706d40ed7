package client

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plexushq/plexus/balance"
)

// slowSometimes answers after 1ms, but every twentieth request after 200ms.
func slowSometimes() http.HandlerFunc {
	var n atomic.Int64
	return func(w http.ResponseWriter, r *http.Request) {
		d := time.Millisecond
		if n.Add(1)%20 == 0 {
			d = 200 * time.Millisecond
		}
		select {
		case <-time.After(d):
			w.WriteHeader(200)
		case <-r.Context().Done():
		}
	}
}

// latencies runs calls calls (4 at a time) and returns their sorted latencies.
func latencies(t *testing.T, c *Client, calls int) []time.Duration {
	t.Helper()
	lat := make([]time.Duration, calls)
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 4 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < calls; i = int(next.Add(1)) - 1 {
				start := time.Now()
				if _, err := c.Call(context.Background(), "svc", "GET", "/", nil); err != nil {
					t.Errorf("call: %v", err)
				}
				lat[i] = time.Since(start)
			}
		})
	}
	wg.Wait()
	slices.Sort(lat)
	return lat
}

// slowCount counts latencies of at least d.
func slowCount(lat []time.Duration, d time.Duration) int {
	i, _ := slices.BinarySearch(lat, d)
	return len(lat) - i
}

func TestHedgingCutsTail(t *testing.T) {
	t.Parallel()
	d := snapshot(newBackend(t, "a", slowSometimes()), newBackend(t, "b", slowSometimes()))
	const calls = 600
	plain := newClient(t, d, Config{Strategy: balance.RoundRobin})
	hedged := newClient(t, d, Config{Strategy: balance.RoundRobin,
		Hedge: HedgePolicy{Percentile: 0.9, MinDelay: 5 * time.Millisecond, Budget: 0.3}})
	without := latencies(t, plain, calls)
	with := latencies(t, hedged, calls)
	p := calls * 99 / 100
	t.Logf("p99 over %d calls, 5%% of requests 200ms slow: without hedging %v, with hedging %v (p50 %v / %v)",
		calls, without[p], with[p], without[calls/2], with[calls/2])
	// Counting calls in the slow tail is robust to CPU noise on a shared
	// machine in a way a single p99 sample is not.
	slowWithout, slowWith := slowCount(without, 150*time.Millisecond), slowCount(with, 150*time.Millisecond)
	t.Logf("calls slower than 150ms: without hedging %d, with hedging %d", slowWithout, slowWith)
	if slowWithout < calls/40 {
		t.Fatalf("setup: only %d slow calls without hedging", slowWithout)
	}
	if slowWith*3 > slowWithout {
		t.Fatalf("hedging did not cut the tail: %d slow calls with hedging vs %d without", slowWith, slowWithout)
	}
}

func TestHedgingNotForPost(t *testing.T) {
	t.Parallel()
	a, b := newBackend(t, "a", slowSometimes()), newBackend(t, "b", slowSometimes())
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

func TestBudgetWindow(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	b := NewBudget(0.5, 0.1, func() time.Time { return now }) // floor 1 per window
	for range 10 {
		b.Deposit()
	}
	n := 0
	for b.Withdraw() {
		n++
	}
	if n != 6 {
		t.Fatalf("withdrew %d, want 10*0.5+1", n)
	}
	now = now.Add(11 * time.Second) // the window slid past everything
	if !b.Withdraw() || b.Withdraw() {
		t.Fatal("after the window only the floor should remain")
	}
}
