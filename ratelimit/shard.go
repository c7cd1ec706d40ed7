package ratelimit

import "sync"

// shard holds the buckets of some of the keys, at most cap of them: a map
// from key to a slot of a slab, and a min-heap of the slots ordered by TAT.
// The heap's root is the bucket that is (or will be) full soonest: expired
// buckets are found there first, and when the shard is full it is the one
// whose eviction loses the least (its client gets back at most the few
// tokens it was still owed). Guarded by mu.
type shard struct {
	mu   sync.Mutex
	cap  int
	idx  map[string]int32
	ents []entry
	heap []int32 // slab slots, min-heap by ents[slot].tat
	free []int32 // unused slab slots
}

type entry struct {
	key string
	tat int64
	pos int32 // index in heap
}

func (s *shard) init(capacity int) {
	s.cap = capacity
	s.idx = make(map[string]int32)
}

// trimPerCall bounds the expired entries dropped by one call.
const trimPerCall = 8

// lookup returns key's TAT and slot (-1 when not tracked: a full bucket).
// It first drops up to trimPerCall buckets that are full again (they carry
// no information).
func (s *shard) lookup(key string, now int64) (int64, int32) {
	for range trimPerCall {
		if len(s.heap) == 0 || s.ents[s.heap[0]].tat > now {
			break
		}
		s.remove(s.heap[0])
	}
	if i, ok := s.idx[key]; ok {
		return s.ents[i].tat, i
	}
	return 0, -1
}

// store saves key's TAT in slot, or in a new slot when slot is -1. A new key
// whose bucket is full (tat ≤ now) is not added; when the shard is full the
// bucket closest to full is evicted first.
func (s *shard) store(slot int32, key string, tat, now int64) {
	if slot >= 0 {
		if s.ents[slot].tat != tat {
			s.ents[slot].tat = tat
			s.down(int(s.ents[slot].pos)) // a TAT only grows
		}
		return
	}
	if tat <= now || s.cap == 0 {
		return
	}
	if len(s.idx) >= s.cap {
		s.remove(s.heap[0])
	}
	var i int32
	if n := len(s.free); n > 0 {
		i, s.free = s.free[n-1], s.free[:n-1]
	} else {
		s.ents = append(s.ents, entry{})
		i = int32(len(s.ents) - 1)
	}
	s.ents[i] = entry{key: key, tat: tat, pos: int32(len(s.heap))}
	s.idx[key] = i
	s.heap = append(s.heap, i)
	s.up(len(s.heap) - 1)
}

// remove drops slab slot i from the map and the heap.
func (s *shard) remove(i int32) {
	p := int(s.ents[i].pos)
	last := len(s.heap) - 1
	if p != last {
		s.swap(p, last)
	}
	s.heap = s.heap[:last]
	if p != last {
		s.down(p)
		s.up(p)
	}
	delete(s.idx, s.ents[i].key)
	s.ents[i] = entry{}
	s.free = append(s.free, i)
}

func (s *shard) less(a, b int) bool { return s.ents[s.heap[a]].tat < s.ents[s.heap[b]].tat }

func (s *shard) swap(a, b int) {
	s.heap[a], s.heap[b] = s.heap[b], s.heap[a]
	s.ents[s.heap[a]].pos = int32(a)
	s.ents[s.heap[b]].pos = int32(b)
}

func (s *shard) up(j int) {
	for j > 0 {
		p := (j - 1) / 2
		if !s.less(j, p) {
			return
		}
		s.swap(j, p)
		j = p
	}
}

func (s *shard) down(j int) {
	n := len(s.heap)
	for {
		c := 2*j + 1
		if c >= n {
			return
		}
		if r := c + 1; r < n && s.less(r, c) {
			c = r
		}
		if !s.less(c, j) {
			return
		}
		s.swap(j, c)
		j = c
	}
}
