package breaker

import (
	"strconv"
	"sync"
	"testing"
	"time"
)

func TestGroupGetAndList(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var names []string
	g := NewGroup(Config{FailureThreshold: 1}, 10, WithClock(newClock()),
		OnStateChange(func(name string, _, _ State) { mu.Lock(); names = append(names, name); mu.Unlock() }))
	a := g.Get("users")
	if g.Get("users") != a {
		t.Fatal("Get returned a different breaker for the same name")
	}
	b := g.Get("orders/i-2")
	call(t, b, false)
	list := g.List()
	if len(list) != 2 || list[0].Name != "orders/i-2" || list[0].State != Open || list[1].Name != "users" || list[1].State != Closed {
		t.Fatalf("list %+v", list)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(names) != 1 || names[0] != "orders/i-2" {
		t.Errorf("callback names %v", names)
	}
}

func TestGroupEvictsLeastRecentlyUsedClosed(t *testing.T) {
	t.Parallel()
	g := NewGroup(Config{FailureThreshold: 1, ResetTimeout: time.Hour}, 3, WithClock(newClock()))
	g.Get("a")
	call(t, g.Get("b"), false) // b is open: kept although old
	g.Get("c")
	g.Get("a")
	g.Get("d") // evicts c, the least recently used closed one
	names := func() (s []string) {
		for _, in := range g.List() {
			s = append(s, in.Name)
		}
		return s
	}
	if got := names(); len(got) != 3 || got[0] != "a" || got[1] != "b" || got[2] != "d" {
		t.Fatalf("after eviction: %v", got)
	}
	if g.Get("b").State() != Open {
		t.Fatal("open breaker lost its state")
	}
	// Every breaker open: the cap still holds.
	call(t, g.Get("a"), false)
	call(t, g.Get("d"), false)
	for i := range 10 {
		call(t, g.Get("x"+strconv.Itoa(i)), false)
		if g.Len() > 3 {
			t.Fatalf("group grew to %d", g.Len())
		}
	}
	g.Remove("x9")
	if g.Len() != 2 {
		t.Errorf("Len after Remove %d", g.Len())
	}
}

func TestGroupConcurrent(t *testing.T) {
	t.Parallel()
	g := NewGroup(Config{}, 50)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for k := range 2000 {
				b := g.Get("svc-" + strconv.Itoa((k*7+w)%80))
				tk, err := b.Allow()
				if err == nil {
					b.Done(tk, k%5 != 0)
				}
				if k%100 == 0 {
					_ = g.List()
				}
			}
		})
	}
	wg.Wait()
	if g.Len() > 50 {
		t.Errorf("Len %d over max 50", g.Len())
	}
}

func BenchmarkGroupGet(b *testing.B) {
	g := NewGroup(Config{}, 0)
	for i := range 100 {
		g.Get("svc-" + strconv.Itoa(i))
	}
	b.ReportAllocs()
	for b.Loop() {
		g.Get("svc-42")
	}
}
