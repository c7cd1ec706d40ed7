package ratelimit

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plexushq/plexus/clock"
)

func newClock() *clock.Manual { return clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) }

func TestBurstAndHeaders(t *testing.T) {
	t.Parallel()
	clk := newClock()
	l := New(Config{Requests: 10, Per: time.Second, Burst: 5}, WithClock(clk))
	for i := range 5 {
		r := l.Allow("a")
		want := Result{Allowed: true, Limit: 5, Remaining: 4 - i, Reset: time.Duration(i+1) * 100 * time.Millisecond}
		if r != want {
			t.Fatalf("request %d: %+v, want %+v", i+1, r, want)
		}
	}
	r := l.Allow("a")
	want := Result{Allowed: false, Limit: 5, Remaining: 0, Reset: 500 * time.Millisecond, RetryAfter: 100 * time.Millisecond}
	if r != want {
		t.Fatalf("6th: %+v, want %+v", r, want)
	}
	clk.Advance(40 * time.Millisecond)
	if r := l.Allow("a"); r.Allowed || r.RetryAfter != 60*time.Millisecond || r.Reset != 460*time.Millisecond {
		t.Fatalf("40ms later: %+v", r)
	}
}

func TestRefill(t *testing.T) {
	t.Parallel()
	clk := newClock()
	l := New(Config{Requests: 10, Per: time.Second}, WithClock(clk)) // burst defaults to 10
	allowed := func() (n int) {
		for l.Allow("k").Allowed {
			n++
		}
		return n
	}
	if n := allowed(); n != 10 {
		t.Fatalf("initial burst %d, want 10", n)
	}
	clk.Advance(100 * time.Millisecond)
	if n := allowed(); n != 1 {
		t.Fatalf("after 100ms %d, want 1", n)
	}
	clk.Advance(350 * time.Millisecond)
	if n := allowed(); n != 3 {
		t.Fatalf("after 350ms %d, want 3", n)
	}
	clk.Advance(time.Hour) // never more than the burst
	if n := allowed(); n != 10 {
		t.Fatalf("after an hour %d, want 10", n)
	}
}

func TestOriginalDefaults(t *testing.T) {
	t.Parallel()
	clk := newClock()
	l := New(Config{Requests: 100}, WithClock(clk)) // per a minute, burst 100
	for i := range 100 {
		if !l.Allow("1.2.3.4 /api/users").Allowed {
			t.Fatalf("request %d denied", i+1)
		}
	}
	r := l.Allow("1.2.3.4 /api/users")
	if r.Allowed || r.RetryAfter != 600*time.Millisecond || r.Limit != 100 || r.Reset != time.Minute {
		t.Fatalf("101st: %+v", r)
	}
	if c := l.Config(); c.Per != time.Minute || c.Burst != 100 || c.MaxKeys != DefaultMaxKeys {
		t.Errorf("config %+v", c)
	}
}

func TestPerKeyIsolation(t *testing.T) {
	t.Parallel()
	l := New(Config{Requests: 2, Per: time.Minute}, WithClock(newClock()))
	l.Allow("a")
	l.Allow("a")
	if l.Allow("a").Allowed {
		t.Fatal("a over its limit")
	}
	if r := l.Allow("b"); !r.Allowed || r.Remaining != 1 {
		t.Fatalf("b affected by a: %+v", r)
	}
}

func TestUnlimited(t *testing.T) {
	t.Parallel()
	l := New(Config{})
	for range 1000 {
		if !l.Allow("x").Allowed {
			t.Fatal("denied without a limit")
		}
	}
	if l.Len() != 0 {
		t.Errorf("Len %d", l.Len())
	}
	for _, bad := range []Config{{Requests: -1}, {Per: -1}, {Burst: -1}, {MaxKeys: -1}} {
		if bad.Validate() == nil {
			t.Errorf("Validate(%+v) = nil", bad)
		}
	}
}

func TestHugeBurstIsClamped(t *testing.T) {
	t.Parallel()
	l := New(Config{Requests: 1, Per: 24 * time.Hour, Burst: 1 << 40}, WithClock(newClock()))
	r := l.Allow("k")
	if !r.Allowed || r.Limit <= 0 || r.Remaining != r.Limit-1 || r.Reset != 24*time.Hour {
		t.Fatalf("%+v", r)
	}
}

func TestIdleKeysExpire(t *testing.T) {
	t.Parallel()
	clk := newClock()
	l := New(Config{Requests: 10, Per: time.Second, Burst: 10}, WithClock(clk))
	for i := range 1000 {
		l.Allow("old-" + strconv.Itoa(i))
	}
	if l.Len() != 1000 {
		t.Fatalf("Len %d", l.Len())
	}
	clk.Advance(50 * time.Millisecond) // one token taken 50ms ago: not yet full, kept
	for i := range 1000 {
		l.Allow("mid-" + strconv.Itoa(i))
	}
	if l.Len() != 2000 {
		t.Fatalf("keys dropped before their bucket was full: Len %d", l.Len())
	}
	clk.Advance(time.Second) // every bucket is full again
	for range 2 {            // every call drops up to 8 idle keys of its shard
		for i := range 1000 {
			l.Allow("new-" + strconv.Itoa(i))
		}
	}
	if n := l.Len(); n != 1000 {
		t.Fatalf("idle keys not dropped: Len %d, want 1000", n)
	}
	if r := l.Allow("old-1"); !r.Allowed || r.Remaining != 9 {
		t.Fatalf("expired key not back to a full bucket: %+v", r)
	}
}

func TestCapNeverExceeded(t *testing.T) {
	t.Parallel()
	clk := newClock()
	const maxKeys = 1000
	l := New(Config{Requests: 1, Per: time.Hour, MaxKeys: maxKeys}, WithClock(clk))
	var wg sync.WaitGroup
	var over atomic.Int64
	for w := range 4 {
		wg.Go(func() {
			for i := range 20000 {
				l.Allow("flood-" + strconv.Itoa(w) + "-" + strconv.Itoa(i))
				if i%500 == 0 {
					if n := l.Len(); n > maxKeys {
						over.Store(int64(n))
					}
				}
			}
		})
	}
	wg.Wait()
	if n := over.Load(); n != 0 {
		t.Fatalf("Len reached %d > %d", n, maxKeys)
	}
	if n := l.Len(); n != maxKeys {
		t.Fatalf("Len %d after the flood, want the cap %d", n, maxKeys)
	}
}

func TestActiveKeySurvivesFlood(t *testing.T) {
	t.Parallel()
	clk := newClock()
	l := New(Config{Requests: 5, Per: time.Hour, MaxKeys: 300}, WithClock(clk))
	l.Allow("busy")
	for i := range 5000 {
		l.Allow("flood-" + strconv.Itoa(i))
		if i%50 == 0 {
			l.Allow("busy") // recently used: not the one evicted
		}
	}
	if r := l.Allow("busy"); r.Allowed {
		t.Fatalf("busy key was evicted and got a fresh bucket: %+v", r)
	}
	if l.Len() > 300 {
		t.Fatalf("Len %d", l.Len())
	}
}

func TestConcurrentSameKey(t *testing.T) {
	t.Parallel()
	l := New(Config{Requests: 100, Per: time.Hour, Burst: 500}, WithClock(newClock()))
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				if l.Allow("hot").Allowed {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := allowed.Load(); n != 500 {
		t.Fatalf("%d allowed, want exactly the burst 500", n)
	}
}

func TestAllowExistingKeyDoesNotAllocate(t *testing.T) {
	l := New(Config{Requests: 1000, Per: time.Second})
	l.Allow("10.0.0.1 /api/users")
	if a := testing.AllocsPerRun(1000, func() { l.Allow("10.0.0.1 /api/users") }); a != 0 {
		t.Errorf("%v allocations per Allow", a)
	}
}

func BenchmarkAllowExistingKey(b *testing.B) {
	// 1µs per token and a burst of 2^30 tokens: never denied, never idle.
	l := New(Config{Requests: 1e6, Per: time.Second, Burst: 1 << 30})
	l.Allow("10.0.0.1 /api/users")
	b.ReportAllocs()
	for b.Loop() {
		l.Allow("10.0.0.1 /api/users")
	}
}

func BenchmarkAllowParallel(b *testing.B) {
	l := New(Config{Requests: 1e6, Per: time.Second, Burst: 1 << 30})
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = "10.0.0." + strconv.Itoa(i)
		l.Allow(keys[i])
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			l.Allow(keys[i&1023])
		}
	})
}

func BenchmarkAllowUniqueKeysAtCap(b *testing.B) {
	l := New(Config{Requests: 10, Per: time.Second, MaxKeys: 10000})
	keys := make([]string, 1<<16)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		l.Allow(keys[i&(1<<16-1)])
	}
}
