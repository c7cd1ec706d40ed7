package ratelimit

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// checkShard verifies the heap order and that map, slab and heap agree.
func checkShard(t *testing.T, s *shard) {
	t.Helper()
	if len(s.idx) != len(s.heap) || len(s.idx) > s.cap {
		t.Fatalf("map %d, heap %d, cap %d", len(s.idx), len(s.heap), s.cap)
	}
	for j, slot := range s.heap {
		if int(s.ents[slot].pos) != j {
			t.Fatalf("slot %d at heap %d says pos %d", slot, j, s.ents[slot].pos)
		}
		if j > 0 && s.less(j, (j-1)/2) {
			t.Fatalf("heap order broken at %d", j)
		}
		if s.idx[s.ents[slot].key] != slot {
			t.Fatalf("map disagrees for %q", s.ents[slot].key)
		}
	}
}

// bucketModel is a plain token bucket counted in nanoseconds of refill: an
// independent formulation to check the GCRA arithmetic against.
type bucketModel struct {
	tokens, last int64
	seen         bool
}

func TestMatchesTokenBucketModel(t *testing.T) {
	t.Parallel()
	clk := newClock()
	cfg := Config{Requests: 7, Per: 700 * time.Millisecond, Burst: 4}
	l := New(cfg, WithClock(clk))
	interval := int64(100 * time.Millisecond)
	tau := 4 * interval
	models := map[string]*bucketModel{}
	r := rand.New(rand.NewPCG(1, 2))
	var elapsed int64
	for n := range 20000 {
		step := time.Duration(r.IntN(60)) * time.Millisecond
		clk.Advance(step)
		elapsed += int64(step)
		key := "k" + strconv.Itoa(r.IntN(20))
		m := models[key]
		if m == nil {
			m = &bucketModel{}
			models[key] = m
		}
		if !m.seen {
			m.tokens, m.seen = tau, true
		} else {
			m.tokens = min(tau, m.tokens+elapsed-m.last)
		}
		m.last = elapsed
		want := Result{Limit: 4}
		if m.tokens >= interval {
			m.tokens -= interval
			want.Allowed = true
			want.Remaining = int(m.tokens / interval)
		} else {
			want.RetryAfter = time.Duration(interval - m.tokens)
		}
		want.Reset = time.Duration(tau - m.tokens)
		if got := l.Allow(key); got != want {
			t.Fatalf("call %d on %s: %+v, want %+v", n, key, got, want)
		}
	}
	for i := range l.shards {
		checkShard(t, &l.shards[i])
	}
}

// TestFloodDoesNotResetHeavyUser: with LRU eviction a flood of new keys
// would evict the client that used its whole burst long ago and hand it a
// fresh one. Evicting the bucket closest to full keeps it limited.
func TestFloodDoesNotResetHeavyUser(t *testing.T) {
	t.Parallel()
	clk := newClock()
	l := New(Config{Requests: 10, Per: time.Hour, MaxKeys: 300}, WithClock(clk))
	for l.Allow("heavy").Allowed {
	}
	for i := range 5000 { // 500 s: heavy still owes most of its hour
		clk.Advance(100 * time.Millisecond)
		l.Allow("flood-" + strconv.Itoa(i))
	}
	// 500 s gave back 1.4 tokens (one per 6 min): one more request, no burst.
	if r := l.Allow("heavy"); r.Remaining != 0 || r.Reset < 55*time.Minute {
		t.Fatalf("heavy user got a fresh bucket after the flood: %+v", r)
	}
	if l.Len() > 300 {
		t.Fatalf("Len %d", l.Len())
	}
}

func TestEvictsExpiredFirst(t *testing.T) {
	t.Parallel()
	clk := newClock()
	l := New(Config{Requests: 1, Per: time.Second, Burst: 10, MaxKeys: 256}, WithClock(clk))
	if len(l.shards) != 1 {
		t.Fatalf("%d shards", len(l.shards))
	}
	sh := &l.shards[0]
	for range 5 {
		l.Allow("heavy")
	}
	for i := range 255 {
		l.Allow("light-" + strconv.Itoa(i)) // one token each
	}
	checkShard(t, sh)
	clk.Advance(1500 * time.Millisecond) // lights are full again; heavy (5 s owed) is not
	l.Allow("newcomer")
	checkShard(t, sh)
	if _, ok := sh.idx["heavy"]; !ok {
		t.Fatal("heavy evicted while expired keys were there")
	}
	if r := l.Allow("heavy"); r.Remaining != 5 { // 5 taken, 1.5 back, this one: 5.5
		t.Fatalf("heavy %+v", r)
	}
}

func TestShardRandomOperations(t *testing.T) {
	t.Parallel()
	s := &shard{}
	s.init(50)
	r := rand.New(rand.NewPCG(3, 4))
	now := int64(1000)
	for range 20000 {
		now += int64(r.IntN(5))
		key := strconv.Itoa(r.IntN(120))
		tat, slot := s.lookup(key, now)
		s.store(slot, key, max(tat, now)+int64(r.IntN(40)), now)
		if r.IntN(1000) == 0 {
			checkShard(t, s)
		}
	}
	checkShard(t, s)
}
