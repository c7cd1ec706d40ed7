package balance

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// endpoints returns n endpoints named e0..e(n-1) with weight 1.
func endpoints(n int) []*Endpoint {
	eps := make([]*Endpoint, n)
	for i := range eps {
		eps[i] = NewEndpoint("e"+strconv.Itoa(i), 1)
	}
	return eps
}

func mustNew(t testing.TB, s Strategy) Picker {
	t.Helper()
	p, err := NewSeeded(s, 42)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// chiSquare returns the χ² statistic of counts against equal expectation.
func chiSquare(counts []int) float64 {
	total := 0
	for _, c := range counts {
		total += c
	}
	exp := float64(total) / float64(len(counts))
	x := 0.0
	for _, c := range counts {
		d := float64(c) - exp
		x += d * d / exp
	}
	return x
}

func TestMask(t *testing.T) {
	t.Parallel()
	var m Mask
	m = m.With(0).With(63).With(64).With(100).With(-1)
	for i, want := range map[int]bool{0: true, 1: false, 63: true, 64: false, 100: false, -1: false} {
		if m.Has(i) != want {
			t.Errorf("Has(%d) = %v, want %v", i, !want, want)
		}
	}
	if m != 1|1<<63 {
		t.Errorf("mask = %b", m)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	for _, s := range Strategies() {
		if _, err := New(s); err != nil {
			t.Errorf("New(%q): %v", s, err)
		}
	}
	p, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.(*p2c); !ok {
		t.Errorf("New(\"\") = %T, want the default p2c", p)
	}
	if _, err := New("least-conn"); !errors.Is(err, ErrUnknownStrategy) {
		t.Errorf("New(least-conn) error = %v, want ErrUnknownStrategy", err)
	}
}

func TestEmptyAndExhausted(t *testing.T) {
	t.Parallel()
	for _, s := range Strategies() {
		p := mustNew(t, s)
		if i := p.Pick(nil, 1, 0); i != -1 {
			t.Errorf("%s: nil set → %d", s, i)
		}
		if i := p.Pick(NewSet(nil), 1, 0); i != -1 {
			t.Errorf("%s: empty set → %d", s, i)
		}
		set := NewSet(endpoints(3))
		if i := p.Pick(set, 1, Mask(0).With(0).With(1).With(2)); i != -1 {
			t.Errorf("%s: all excluded → %d", s, i)
		}
		if i := p.Pick(set, 1, Mask(0).With(0).With(2)); i != 1 {
			t.Errorf("%s: only 1 left → %d", s, i)
		}
		// Indexes ≥ 64 are never excluded.
		big := NewSet(endpoints(70))
		for range 20 {
			if i := p.Pick(big, 7, ^Mask(0)); i < 64 || i >= 70 {
				t.Fatalf("%s: all low bits excluded → %d, want 64..69", s, i)
			}
		}
	}
}

func TestExcludeRespected(t *testing.T) {
	t.Parallel()
	set := NewSet(endpoints(9))
	for _, s := range Strategies() {
		p := mustNew(t, s)
		r := rng{}
		r.seed(7)
		for n := range 5000 {
			m := Mask(r.next()) & lowBits(9)
			i := p.Pick(set, uint64(n), m)
			if m == lowBits(9) {
				if i != -1 {
					t.Fatalf("%s: everything excluded, got %d", s, i)
				}
				continue
			}
			if i < 0 || i >= 9 || m.Has(i) {
				t.Fatalf("%s: mask %09b picked %d", s, m, i)
			}
		}
	}
}

func TestUniformDistribution(t *testing.T) {
	t.Parallel()
	const n, picks = 7, 70000
	// χ² critical value for 6 degrees of freedom at p = 0.001.
	const crit = 22.46
	for _, s := range []Strategy{RoundRobin, LeastConnections, Random, Weighted, P2C, Hash} {
		t.Run(string(s), func(t *testing.T) {
			t.Parallel()
			p := mustNew(t, s)
			set := NewSet(endpoints(n))
			counts := make([]int, n)
			for k := range picks {
				counts[p.Pick(set, HashString(strconv.Itoa(k)), 0)]++
			}
			if x := chiSquare(counts); x > crit {
				t.Errorf("counts %v: χ² = %.1f > %.1f", counts, x, crit)
			}
			if s == RoundRobin || s == LeastConnections || s == Weighted {
				for i, c := range counts {
					if c != picks/n {
						t.Errorf("%s is deterministic: endpoint %d got %d, want %d", s, i, c, picks/n)
					}
				}
			}
		})
	}
}

// TestRoundRobinStableUnderChange flips the healthy set every few picks;
// the endpoints that stay must still share picks evenly (the seed's
// counter % len skewed here; docs/balancing.md).
func TestRoundRobinStableUnderChange(t *testing.T) {
	t.Parallel()
	eps := endpoints(5)
	full := NewSet(eps)
	partial := NewSet([]*Endpoint{eps[0], eps[1], eps[3], eps[4]}) // e2 comes and goes
	p := mustNew(t, RoundRobin)
	counts := map[string]int{}
	last := ""
	for k := range 10000 {
		set := full
		if (k/3)%2 == 1 {
			set = partial
		}
		id := set.At(p.Pick(set, 0, 0)).ID()
		if id == last {
			t.Fatalf("pick %d: %s twice in a row", k, id)
		}
		last = id
		counts[id]++
	}
	lo, hi := math.MaxInt, 0
	for _, id := range []string{"e0", "e1", "e3", "e4"} {
		lo, hi = min(lo, counts[id]), max(hi, counts[id])
	}
	if hi-lo > 1 {
		t.Errorf("stable endpoints skewed: %v", counts)
	}
	if counts["e2"] == 0 {
		t.Errorf("e2 never picked while present: %v", counts)
	}
}

func TestWeightedSmooth(t *testing.T) {
	t.Parallel()
	a, b, c := NewEndpoint("a", 5), NewEndpoint("b", 1), NewEndpoint("c", 1)
	set := NewSet([]*Endpoint{a, b, c})
	p := mustNew(t, Weighted)
	got := ""
	for range 7 {
		got += set.At(p.Pick(set, 0, 0)).ID()
	}
	if got != "aabacaa" {
		t.Errorf("sequence %q, want nginx's aabacaa", got)
	}
	counts := map[string]int{}
	for range 7000 {
		counts[set.At(p.Pick(set, 0, 0)).ID()]++
	}
	if counts["a"] != 5000 || counts["b"] != 1000 || counts["c"] != 1000 {
		t.Errorf("counts %v, want 5000/1000/1000", counts)
	}
	// Excluding a leaves b and c alternating.
	x := Mask(0).With(0)
	counts = map[string]int{}
	for range 1000 {
		counts[set.At(p.Pick(set, 0, x)).ID()]++
	}
	if counts["b"] != 500 || counts["c"] != 500 {
		t.Errorf("with a excluded: %v", counts)
	}
}

func TestWeightedAcrossSetChanges(t *testing.T) {
	t.Parallel()
	a, b, c := NewEndpoint("a", 3), NewEndpoint("b", 2), NewEndpoint("c", 1)
	p := mustNew(t, Weighted)
	counts := map[string]int{}
	for k := range 6000 {
		// A fresh Set every 5 picks (same endpoints, another order).
		eps := []*Endpoint{a, b, c}
		if (k/5)%2 == 1 {
			eps = []*Endpoint{c, a, b}
		}
		set := NewSet(eps)
		counts[set.At(p.Pick(set, 0, 0)).ID()]++
	}
	if counts["a"] != 3000 || counts["b"] != 2000 || counts["c"] != 1000 {
		t.Errorf("counts %v, want 3000/2000/1000", counts)
	}
}

func TestLeastConnectionsFollowsInFlight(t *testing.T) {
	t.Parallel()
	eps := endpoints(4)
	set := NewSet(eps)
	p := mustNew(t, LeastConnections)
	for i, n := range []int{3, 1, 2, 5} {
		for range n {
			eps[i].Begin()
		}
	}
	for range 10 {
		if i := p.Pick(set, 0, 0); i != 1 {
			t.Fatalf("picked %d (in-flight %d), want 1", i, eps[i].InFlight())
		}
	}
	if i := p.Pick(set, 0, Mask(0).With(1)); i != 2 {
		t.Errorf("with 1 excluded picked %d, want 2", i)
	}
	// Simulate: each pick begins a request on the chosen endpoint; the
	// in-flight counts must level out.
	for range 9 {
		set.At(p.Pick(set, 0, 0)).Begin()
	}
	for i, e := range eps {
		if e.InFlight() != 5 {
			t.Errorf("endpoint %d in-flight %d, want 5 after levelling", i, e.InFlight())
		}
	}
	// Ties are shared in turn, not always the first.
	for _, e := range eps {
		for e.InFlight() > 0 {
			e.End(time.Millisecond, true)
		}
	}
	seen := map[int]int{}
	for range 400 {
		seen[p.Pick(set, 0, 0)]++
	}
	for i := range eps {
		if seen[i] != 100 {
			t.Errorf("idle tie: endpoint %d got %d of 400", i, seen[i])
		}
	}
	// Weighted: in-flight per unit of weight.
	heavy, light := NewEndpoint("h", 3), NewEndpoint("l", 1)
	ws := NewSet([]*Endpoint{heavy, light})
	heavy.Begin()
	heavy.Begin()
	light.Begin()
	if i := p.Pick(ws, 0, 0); i != 0 {
		t.Errorf("2 in flight on weight 3 vs 1 on weight 1: picked %d, want 0", i)
	}
}

// fakeClock is a monotonic nanosecond clock for endpoints and p2c.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() int64          { return c.ns.Load() }
func (c *fakeClock) add(d time.Duration) { c.ns.Add(int64(d)) }
func (c *fakeClock) attach(eps []*Endpoint) {
	for _, e := range eps {
		e.now = c.now
	}
}

func TestEWMA(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{}
	clk.add(time.Second)
	e := NewEndpoint("a", 1)
	clk.attach([]*Endpoint{e})
	if e.EWMA() != 0 {
		t.Fatalf("fresh EWMA %v", e.EWMA())
	}
	e.Begin()
	e.End(10*time.Millisecond, true)
	if e.EWMA() != 10*time.Millisecond || e.InFlight() != 0 {
		t.Fatalf("after one 10ms: %v, in-flight %d", e.EWMA(), e.InFlight())
	}
	e.Begin()
	e.End(50*time.Millisecond, true) // peak: jumps up at once
	if e.EWMA() != 50*time.Millisecond {
		t.Fatalf("peak: %v", e.EWMA())
	}
	clk.add(DecayTime) // decays by e without observations
	if got, want := e.EWMA(), time.Duration(float64(50*time.Millisecond)/e1); absDur(got-want) > time.Microsecond {
		t.Fatalf("decayed %v, want %v", got, want)
	}
	e.Begin()
	e.End(time.Millisecond, false) // a fast failure is penalised
	if e.EWMA() < FailurePenalty {
		t.Fatalf("after a failure: %v, want ≥ %v", e.EWMA(), FailurePenalty)
	}
}

var e1 = math.E

// Cancel ends a request without touching the latency estimate.
func TestCancelLeavesEWMA(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{}
	clk.add(time.Second)
	e := NewEndpoint("a", 1)
	clk.attach([]*Endpoint{e})
	e.Begin()
	e.End(10*time.Millisecond, true)
	e.Begin()
	clk.add(time.Hour / 3600) // the request takes a while: its client was slow
	e.Cancel()
	if e.InFlight() != 0 {
		t.Fatalf("in-flight %d after Cancel, want 0", e.InFlight())
	}
	if got, want := e.EWMA(), time.Duration(float64(10*time.Millisecond)*decay(int64(time.Second))); absDur(got-want) > time.Microsecond {
		t.Fatalf("EWMA %v after Cancel, want the earlier estimate decayed (%v)", got, want)
	}
}

func TestDecay(t *testing.T) {
	t.Parallel()
	for _, dt := range []time.Duration{0, time.Microsecond, time.Millisecond, 100 * time.Millisecond, DecayTime / 64, time.Second, DecayTime, time.Hour} {
		want := math.Exp(-float64(dt) / float64(DecayTime))
		if got := decay(int64(dt)); math.Abs(got-want) > 1e-6 {
			t.Errorf("decay(%v) = %v, want %v", dt, got, want)
		}
	}
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// simulate runs steps picks, advancing the clock by 10ms per pick; each
// request ends at once with its endpoint's current latency.
func simulate(p Picker, set *Set, clk *fakeClock, lat map[string]time.Duration, steps int) map[string]int {
	counts := map[string]int{}
	for range steps {
		clk.add(10 * time.Millisecond)
		e := set.At(p.Pick(set, 0, 0))
		counts[e.ID()]++
		e.Begin()
		e.End(lat[e.ID()], true)
	}
	return counts
}

func TestP2CPrefersFastAndRecovers(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{}
	clk.add(time.Second)
	eps := endpoints(3)
	clk.attach(eps)
	set := NewSet(eps)
	p := mustNew(t, P2C)
	lat := map[string]time.Duration{"e0": 10 * time.Millisecond, "e1": 12 * time.Millisecond, "e2": 200 * time.Millisecond}
	counts := simulate(p, set, clk, lat, 3000) // 30 s simulated
	t.Logf("slow e2: %v", counts)
	if share := float64(counts["e2"]) / 3000; share > 0.03 {
		t.Errorf("slow endpoint got %.1f%% (%v)", share*100, counts)
	}
	if counts["e0"] == 0 || counts["e1"] == 0 {
		t.Errorf("fast endpoints starved: %v", counts)
	}
	// e2 becomes the fastest: decay gets it tried again, then it wins.
	lat["e2"] = 2 * time.Millisecond
	simulate(p, set, clk, lat, 6000) // 60 s to recover
	counts = simulate(p, set, clk, lat, 3000)
	t.Logf("recovered e2: %v", counts)
	if share := float64(counts["e2"]) / 3000; share < 0.5 {
		t.Errorf("recovered endpoint got only %.1f%% (%v)", share*100, counts)
	}
}

func TestP2CInFlightAndFailures(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{}
	clk.add(time.Second)
	eps := endpoints(2)
	clk.attach(eps)
	set := NewSet(eps)
	p := mustNew(t, P2C)
	for _, e := range eps {
		e.Begin()
		e.End(10*time.Millisecond, true)
	}
	for range 3 {
		eps[0].Begin()
	}
	for range 100 {
		if i := p.Pick(set, 0, 0); i != 1 {
			t.Fatalf("equal latency, e0 busier: picked %d", i)
		}
	}
	for range 3 {
		eps[0].End(10*time.Millisecond, true)
	}
	eps[1].Begin()
	eps[1].End(time.Millisecond, false) // fast failure
	for range 100 {
		if i := p.Pick(set, 0, 0); i != 0 {
			t.Fatalf("e1 just failed: picked %d", i)
		}
	}
}

func TestP2CNewcomerGetsMeasured(t *testing.T) {
	t.Parallel()
	eps := endpoints(2)
	eps[0].Begin()
	eps[0].End(5*time.Millisecond, true)
	set := NewSet(eps)
	p := mustNew(t, P2C)
	if i := p.Pick(set, 0, 0); i != 1 {
		t.Errorf("unmeasured idle endpoint not preferred: picked %d", i)
	}
}

func TestHashStickyAndMinimalMovement(t *testing.T) {
	t.Parallel()
	eps := endpoints(10)
	full := NewSet(eps)
	p := mustNew(t, Hash)
	const keys = 20000
	owner := make([]string, keys)
	counts := make([]int, 10)
	for k := range keys {
		key := HashString("client-" + strconv.Itoa(k))
		i := p.Pick(full, key, 0)
		if j := p.Pick(full, key, 0); j != i {
			t.Fatalf("key %d not sticky: %d then %d", k, i, j)
		}
		owner[k] = full.At(i).ID()
		counts[i]++
	}
	if x := chiSquare(counts); x > 27.88 { // 9 d.f., p = 0.001
		t.Errorf("keys per endpoint %v: χ² %.1f", counts, x)
	}
	// e4 leaves: only its keys move; excluding it gives the same answer.
	without := NewSet(append(append([]*Endpoint{}, eps[:4]...), eps[5:]...))
	moved := 0
	for k := range keys {
		key := HashString("client-" + strconv.Itoa(k))
		got := without.At(p.Pick(without, key, 0)).ID()
		if owner[k] != "e4" && got != owner[k] {
			t.Fatalf("key %d moved from %s to %s although its endpoint stayed", k, owner[k], got)
		}
		if got != owner[k] {
			moved++
		}
		if ex := full.At(p.Pick(full, key, Mask(0).With(4))).ID(); ex != got {
			t.Fatalf("key %d: exclude gives %s, removal gives %s", k, ex, got)
		}
	}
	if moved != counts[4] {
		t.Errorf("moved %d keys, e4 owned %d", moved, counts[4])
	}
}

func TestHashWeighted(t *testing.T) {
	t.Parallel()
	set := NewSet([]*Endpoint{NewEndpoint("a", 1), NewEndpoint("b", 2), NewEndpoint("c", 3)})
	p := mustNew(t, Hash)
	counts := make([]int, 3)
	const keys = 60000
	for k := range keys {
		counts[p.Pick(set, HashString(strconv.Itoa(k)), 0)]++
	}
	for i, w := range []float64{1, 2, 3} {
		want := keys * w / 6
		if math.Abs(float64(counts[i])-want) > want*0.05 {
			t.Errorf("weight %v: %d keys, want ≈ %.0f", w, counts[i], want)
		}
	}
}

func TestRandomWithExclusionIsUniform(t *testing.T) {
	t.Parallel()
	set := NewSet(endpoints(6))
	p := mustNew(t, Random)
	m := Mask(0).With(1).With(2)
	counts := make([]int, 6)
	for range 40000 {
		counts[p.Pick(set, 0, m)]++
	}
	if counts[1] != 0 || counts[2] != 0 {
		t.Fatalf("excluded picked: %v", counts)
	}
	if x := chiSquare([]int{counts[0], counts[3], counts[4], counts[5]}); x > 16.27 {
		t.Errorf("remaining %v: χ² %.1f", counts, x)
	}
}

func TestSeededIsReproducible(t *testing.T) {
	t.Parallel()
	set := NewSet(endpoints(8))
	for _, s := range []Strategy{Random, P2C} {
		a, _ := NewSeeded(s, 99)
		b, _ := NewSeeded(s, 99)
		for k := range 100 {
			if x, y := a.Pick(set, 0, 0), b.Pick(set, 0, 0); x != y {
				t.Fatalf("%s pick %d: %d vs %d", s, k, x, y)
			}
		}
	}
}

func TestPickDoesNotAllocate(t *testing.T) {
	set := NewSet(endpoints(10))
	wset := NewSet([]*Endpoint{NewEndpoint("a", 3), NewEndpoint("b", 1), NewEndpoint("c", 2)})
	for _, s := range Strategies() {
		p := mustNew(t, s)
		for _, st := range []*Set{set, wset} {
			p.Pick(st, 1, 0) // warm (weighted sizes its state once per Set)
			k := uint64(0)
			if a := testing.AllocsPerRun(1000, func() {
				k++
				i := p.Pick(st, k, Mask(k&3))
				e := st.At(i)
				e.Begin()
				e.End(time.Millisecond, k%5 != 0)
			}); a != 0 {
				t.Errorf("%s: %v allocations per pick", s, a)
			}
		}
	}
}

func TestConcurrentPicks(t *testing.T) {
	t.Parallel()
	const workers, each = 4, 3000
	for _, s := range Strategies() {
		t.Run(string(s), func(t *testing.T) {
			p := mustNew(t, s)
			eps := endpoints(6)
			set := NewSet(eps)
			counts := make([]atomic.Int64, len(eps))
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for k := range each {
						i := p.Pick(set, uint64(w*each+k), 0)
						counts[i].Add(1)
						e := set.At(i)
						e.Begin()
						_ = e.EWMA()
						e.End(time.Duration(k%7)*time.Millisecond, k%11 != 0)
					}
				})
			}
			wg.Wait()
			total := int64(0)
			for i := range counts {
				total += counts[i].Load()
				if eps[i].InFlight() != 0 {
					t.Errorf("endpoint %d in-flight %d after all ended", i, eps[i].InFlight())
				}
			}
			if total != workers*each {
				t.Errorf("total %d", total)
			}
			if s == RoundRobin || s == Weighted {
				for i := range counts {
					if c := counts[i].Load(); c != workers*each/6 {
						t.Errorf("%s endpoint %d: %d picks, want exactly %d", s, i, c, workers*each/6)
					}
				}
			}
		})
	}
}

func TestSetIndex(t *testing.T) {
	t.Parallel()
	set := NewSet(append(endpoints(3), nil))
	if set.Len() != 3 || set.Index("e2") != 2 || set.Index("x") != -1 || (*Set)(nil).Index("e0") != -1 {
		t.Errorf("Len %d Index(e2) %d", set.Len(), set.Index("e2"))
	}
}

func BenchmarkPick(b *testing.B) {
	for _, n := range []int{3, 10, 50} {
		set := NewSet(endpoints(n))
		for _, s := range Strategies() {
			b.Run(fmt.Sprintf("%s/n=%d", s, n), func(b *testing.B) {
				p := mustNew(b, s)
				b.ReportAllocs()
				k := uint64(0)
				for b.Loop() {
					k++
					p.Pick(set, k, 0)
				}
			})
		}
	}
}

func BenchmarkPickParallel(b *testing.B) {
	set := NewSet(endpoints(10))
	for _, s := range Strategies() {
		b.Run(string(s), func(b *testing.B) {
			p := mustNew(b, s)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				k := uint64(0)
				for pb.Next() {
					k++
					e := set.At(p.Pick(set, k, 0))
					e.Begin()
					e.End(time.Millisecond, true)
				}
			})
		})
	}
}

func BenchmarkBeginEnd(b *testing.B) {
	e := NewEndpoint("a", 1)
	b.ReportAllocs()
	for b.Loop() {
		e.Begin()
		e.End(time.Millisecond, true)
	}
}
