package balance

import (
	"math/bits"
	"slices"
)

// Set is an immutable ordered snapshot of the endpoints that may be picked,
// built with NewSet once per registry snapshot (not per request). Indexes
// returned by Pick and used in a Mask refer to this order. A nil *Set is an
// empty set.
type Set struct {
	eps []*Endpoint
	// ring holds the indexes of eps sorted by their distinct ring keys;
	// round robin walks it so that the rotation order of the remaining
	// endpoints does not change when one joins or leaves.
	ring    []int32
	ringKey []uint64 // ringKey[j] is the key of eps[ring[j]]
	uniform bool     // all weights equal
}

// NewSet returns a Set of eps in the given order. The slice is copied; the
// endpoints are shared. Nil entries are dropped.
func NewSet(eps []*Endpoint) *Set {
	s := &Set{eps: make([]*Endpoint, 0, len(eps)), uniform: true}
	for _, e := range eps {
		if e == nil {
			continue
		}
		if len(s.eps) > 0 && e.weight != s.eps[0].weight {
			s.uniform = false
		}
		s.eps = append(s.eps, e)
	}
	n := len(s.eps)
	s.ring = make([]int32, n)
	for i := range s.ring {
		s.ring[i] = int32(i)
	}
	slices.SortFunc(s.ring, func(a, b int32) int {
		ea, eb := s.eps[a], s.eps[b]
		switch {
		case ea.hash < eb.hash:
			return -1
		case ea.hash > eb.hash:
			return 1
		case ea.id < eb.id:
			return -1
		case ea.id > eb.id:
			return 1
		}
		return int(a - b)
	})
	s.ringKey = make([]uint64, n)
	for j, i := range s.ring {
		k := s.eps[i].hash
		if j > 0 && k <= s.ringKey[j-1] { // astronomically rare collision: keep keys distinct
			k = s.ringKey[j-1] + 1
		}
		s.ringKey[j] = k
	}
	return s
}

// Len returns the number of endpoints.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.eps)
}

// At returns the endpoint at index i (0 ≤ i < Len()).
func (s *Set) At(i int) *Endpoint { return s.eps[i] }

// Index returns the index of the endpoint with the given id, or -1.
func (s *Set) Index(id string) int {
	if s == nil {
		return -1
	}
	for i, e := range s.eps {
		if e.id == id {
			return i
		}
	}
	return -1
}

// Mask is a set of excluded indexes: bit i excludes index i of a Set (the
// endpoint was already tried, is ejected, or its breaker is open). Indexes
// of 64 and above cannot be represented and are never excluded.
type Mask uint64

// Has reports whether index i is excluded.
func (m Mask) Has(i int) bool { return uint(i) < 64 && m&(1<<uint(i)) != 0 }

// With returns m with index i excluded as well (unchanged for i ≥ 64 or i < 0).
func (m Mask) With(i int) Mask {
	if uint(i) >= 64 {
		return m
	}
	return m | 1<<uint(i)
}

// lowBits returns the mask of valid indexes of a set of n endpoints.
func lowBits(n int) Mask {
	if n >= 64 {
		return ^Mask(0)
	}
	return Mask(1)<<uint(n) - 1
}

// available returns the number of endpoints of s not excluded by m.
func (s *Set) available(m Mask) int {
	n := s.Len()
	return n - bits.OnesCount64(uint64(m&lowBits(n)))
}

// nth returns the index of the k-th (0-based) endpoint not excluded by m.
// k must be below s.available(m).
func (s *Set) nth(m Mask, k int) int {
	m &= lowBits(len(s.eps))
	if m == 0 {
		return k
	}
	// Among the first 64 indexes, skip excluded ones with bit tricks.
	free := ^uint64(m) & uint64(lowBits(min(len(s.eps), 64)))
	if c := bits.OnesCount64(free); k >= c {
		return 64 + (k - c)
	}
	for ; k > 0; k-- {
		free &= free - 1
	}
	return bits.TrailingZeros64(free)
}
