package balance

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"
)

// Compile-time checks that every strategy is a Picker.
var (
	_ Picker = (*roundRobin)(nil)
	_ Picker = (*leastConn)(nil)
	_ Picker = (*random)(nil)
	_ Picker = (*weighted)(nil)
	_ Picker = (*p2c)(nil)
	_ Picker = hashPicker{}
)

// roundRobin walks the Set's ring (endpoints ordered by the hash of their
// id) from the last endpoint it picked. Because the position is remembered
// as a ring key, not as a counter modulo the set size, a joining or leaving
// endpoint does not shift the others: every endpoint still gets exactly one
// pick per round.
type roundRobin struct{ cursor atomic.Uint64 }

func (p *roundRobin) Pick(s *Set, _ uint64, m Mask) int {
	n := s.Len()
	if n == 0 || s.available(m) == 0 {
		return -1
	}
	for {
		c := p.cursor.Load()
		j, found := slices.BinarySearch(s.ringKey, c)
		if found {
			j++
		}
		for t := 0; t < n; t++ {
			jj := j + t
			if jj >= n {
				jj -= n
			}
			i := int(s.ring[jj])
			if m.Has(i) {
				continue
			}
			if p.cursor.CompareAndSwap(c, s.ringKey[jj]) {
				return i
			}
			break // another goroutine moved the cursor: start again from it
		}
	}
}

// leastConn picks the endpoint with the fewest in-flight requests per unit
// of weight. The scan starts at a rotating offset so that ties (typically
// all idle) are shared in turn instead of always going to the first.
type leastConn struct{ rot atomic.Uint64 }

func (p *leastConn) Pick(s *Set, _ uint64, m Mask) int {
	n := s.Len()
	if n == 0 {
		return -1
	}
	start := int(p.rot.Add(1) % uint64(n))
	best, bestIn, bestW := -1, int64(0), int64(1)
	for t := 0; t < n; t++ {
		i := start + t
		if i >= n {
			i -= n
		}
		if m.Has(i) {
			continue
		}
		e := s.eps[i]
		in, w := e.inflight.Load(), int64(e.weight)
		if best < 0 || in*bestW < bestIn*w {
			best, bestIn, bestW = i, in, w
		}
	}
	return best
}

// random picks uniformly among the endpoints not excluded.
type random struct{ rng rng }

func (p *random) Pick(s *Set, _ uint64, m Mask) int {
	k := s.available(m)
	if k == 0 {
		return -1
	}
	return s.nth(m, below(p.rng.next(), k))
}

// weighted is nginx's smooth weighted round robin: each pick adds every
// candidate's weight to its current weight, picks the largest and subtracts
// the total from it. Weights 5,1,1 give a a b a c a a, not a a a a a b c.
// Current weights carry over to the next Set for endpoints in both.
type weighted struct {
	mu    sync.Mutex
	set   *Set
	cur   []int64 // current weights, by index of set
	spare []int64
}

func (p *weighted) Pick(s *Set, _ uint64, m Mask) int {
	n := s.Len()
	if n == 0 {
		return -1
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.set != s {
		p.rebase(s)
	}
	best, total := -1, int64(0)
	for i, e := range s.eps {
		if m.Has(i) {
			continue
		}
		w := int64(e.weight)
		p.cur[i] += w
		total += w
		if best < 0 || p.cur[i] > p.cur[best] {
			best = i
		}
	}
	if best >= 0 {
		p.cur[best] -= total
	}
	return best
}

// rebase switches to a new Set, carrying the current weight of endpoints
// present in both (matched by a merge walk over the key-sorted rings).
func (p *weighted) rebase(s *Set) {
	n := s.Len()
	next := p.spare
	if cap(next) < n {
		next = make([]int64, n)
	}
	next = next[:n]
	clear(next)
	if old := p.set; old != nil {
		o := 0
		for j, k := range s.ringKey {
			for o < len(old.ringKey) && old.ringKey[o] < k {
				o++
			}
			if o < len(old.ringKey) && old.ringKey[o] == k && old.eps[old.ring[o]] == s.eps[s.ring[j]] {
				next[s.ring[j]] = p.cur[old.ring[o]]
			}
		}
	}
	p.spare, p.cur, p.set = p.cur, next, s
}

// p2c draws two distinct candidates at random and keeps the one with the
// lower load = latency EWMA (decayed with time) × (in-flight + 1). When
// either has no latency history yet, the one with fewer in-flight requests
// wins (the newcomer on a tie, so that it gets measured).
type p2c struct{ rng rng }

func (p *p2c) Pick(s *Set, _ uint64, m Mask) int {
	k := s.available(m)
	switch k {
	case 0:
		return -1
	case 1:
		return s.nth(m, 0)
	}
	r := p.rng.next()
	a := below(r, k)
	b := below(mix64(r), k-1)
	if b >= a {
		b++
	}
	ia, ib := s.nth(m, a), s.nth(m, b)
	ea, eb := s.eps[ia], s.eps[ib]
	// Decaying both EWMAs to the later of their two stamps instead of to
	// now gives the same decision (decaying further multiplies both costs by
	// the same factor) and spares a clock read per pick.
	now := max(ea.stamp.Load(), eb.stamp.Load())
	la, lb := ea.ewmaAt(now), eb.ewmaAt(now)
	fa, fb := ea.inflight.Load(), eb.inflight.Load()
	if la == 0 || lb == 0 {
		if fa < fb || (fa == fb && la == 0) {
			return ia
		}
		return ib
	}
	if float64(la)*float64(fa+1) <= float64(lb)*float64(fb+1) {
		return ia
	}
	return ib
}

// hashPicker is rendezvous (highest random weight) hashing: every endpoint
// gets a pseudo-random score from (key, endpoint id) and the highest score
// among the endpoints not excluded wins. When an endpoint leaves, only the
// keys it owned move; an excluded endpoint's keys go to each key's next
// choice. With unequal weights the score is -weight/ln(u) (weighted
// rendezvous), so shares follow weights.
type hashPicker struct{}

func (hashPicker) Pick(s *Set, key uint64, m Mask) int {
	n := s.Len()
	if n == 0 {
		return -1
	}
	kh := mix64(key ^ 0x6a09e667f3bcc909)
	best := -1
	if s.uniform {
		var top uint64
		for i, e := range s.eps {
			if m.Has(i) {
				continue
			}
			if sc := mix64(kh ^ e.hash); best < 0 || sc > top {
				best, top = i, sc
			}
		}
		return best
	}
	top := math.Inf(-1)
	for i, e := range s.eps {
		if m.Has(i) {
			continue
		}
		u := (float64(mix64(kh^e.hash)>>11) + 0.5) / (1 << 53) // (0,1)
		if sc := -float64(e.weight) / math.Log(u); best < 0 || sc > top {
			best, top = i, sc
		}
	}
	return best
}
