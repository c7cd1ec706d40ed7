package ratelimit

import (
	"fmt"
	"hash/maphash"
	"math/bits"
	"time"

	"github.com/plexushq/plexus/clock"
)

// Defaults for zero Config fields.
const (
	DefaultPer     = time.Minute // the seed gateway's window (docs/gateway.md)
	DefaultMaxKeys = 100000
)

// Config is one limit. Requests per Per is the sustained rate, Burst the
// bucket size.
type Config struct {
	// Requests per Per refill the bucket. Zero or negative: no limit (Allow
	// always allows and keeps no state).
	Requests int
	// Per is the refill period. Default one minute.
	Per time.Duration
	// Burst is the bucket size: how many requests may pass at once after
	// idling. Default Requests.
	Burst int
	// MaxKeys caps the number of keys tracked. Default 100000.
	MaxKeys int
}

// Validate reports negative values.
func (c Config) Validate() error {
	switch {
	case c.Requests < 0:
		return fmt.Errorf("ratelimit: requests %d is negative", c.Requests)
	case c.Per < 0:
		return fmt.Errorf("ratelimit: per %v is negative", c.Per)
	case c.Burst < 0:
		return fmt.Errorf("ratelimit: burst %d is negative", c.Burst)
	case c.MaxKeys < 0:
		return fmt.Errorf("ratelimit: maxKeys %d is negative", c.MaxKeys)
	}
	return nil
}

// Result is the outcome of one Allow, with what the RateLimit and
// Retry-After headers need.
type Result struct {
	Allowed bool
	// Limit is the bucket size (Burst).
	Limit int
	// Remaining is the number of tokens left after this request.
	Remaining int
	// Reset is the time until the bucket is full again.
	Reset time.Duration
	// RetryAfter is, when denied, the time until one token is available;
	// zero when allowed.
	RetryAfter time.Duration
}

// Option configures a Limiter.
type Option func(*Limiter)

// WithClock makes the limiter read time from c instead of time.Now.
func WithClock(c clock.Clock) Option { return func(l *Limiter) { l.clock = clock.Or(c) } }

// Sharding: up to maxShards shards (each a mutex and a map), each meant for
// at least minShardKeys keys.
const (
	maxShards    = 64
	minShardKeys = 256
)

// maxTau bounds the time a full bucket represents (about 36 years), so that
// TAT arithmetic cannot overflow; larger bursts are clamped.
const maxTau = 1 << 60

// Limiter applies one Config to many keys. Safe for concurrent use.
type Limiter struct {
	cfg      Config
	interval int64 // ns per token
	tau      int64 // ns for a full bucket (Burst × interval)
	clock    clock.Clock
	sysClock bool
	born     time.Time
	seed     maphash.Seed
	mask     uint64
	shards   []shard
}

// New returns a limiter for cfg (zero fields take the defaults; call
// cfg.Validate first to reject nonsense from configuration files).
func New(cfg Config, opts ...Option) *Limiter {
	if cfg.Per <= 0 {
		cfg.Per = DefaultPer
	}
	if cfg.Burst <= 0 {
		cfg.Burst = cfg.Requests
	}
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = DefaultMaxKeys
	}
	l := &Limiter{cfg: cfg, clock: clock.System, seed: maphash.MakeSeed()}
	for _, o := range opts {
		o(l)
	}
	l.sysClock = clock.IsSystem(l.clock)
	l.born = l.clock.Now()
	if cfg.Requests <= 0 {
		return l
	}
	l.interval = max(int64(cfg.Per)/int64(cfg.Requests), 1)
	if int64(cfg.Burst) > maxTau/l.interval { // keep TAT arithmetic far from overflow
		cfg.Burst = int(maxTau / l.interval)
		l.cfg.Burst = cfg.Burst
	}
	l.tau = l.interval * int64(cfg.Burst)
	// A power of two of shards, each holding at least minShardKeys keys
	// (so LRU order means something), at most maxShards.
	n := 1 << (bits.Len(uint(max(min(cfg.MaxKeys/minShardKeys, maxShards), 1))) - 1)
	l.mask = uint64(n - 1)
	l.shards = make([]shard, n)
	for i := range l.shards {
		// Split MaxKeys exactly: the caps add up to MaxKeys.
		c := cfg.MaxKeys / n
		if i < cfg.MaxKeys%n {
			c++
		}
		l.shards[i].init(c)
	}
	return l
}

// Config returns the limiter's configuration with defaults applied.
func (l *Limiter) Config() Config { return l.cfg }

// Allow takes one token from key's bucket. It does not allocate for a key
// already tracked. Without a limit (Requests ≤ 0) it returns
// Result{Allowed: true} with a zero Limit: send no RateLimit headers then.
func (l *Limiter) Allow(key string) Result {
	if l.shards == nil {
		return Result{Allowed: true}
	}
	now := l.now()
	sh := &l.shards[maphash.String(l.seed, key)&l.mask]
	sh.mu.Lock()
	tat, slot := sh.lookup(key, now)
	res := l.take(&tat, now)
	sh.store(slot, key, tat, now)
	sh.mu.Unlock()
	return res
}

// now returns the time in ns since the limiter was made, plus tau so that it
// is always ≥ tau and a zero TAT (an untracked key) reads as a full bucket.
// With the system clock only the monotonic clock is read (cheaper than
// time.Now).
func (l *Limiter) now() int64 {
	var d time.Duration
	if l.sysClock {
		d = time.Since(l.born)
	} else {
		d = l.clock.Now().Sub(l.born)
	}
	return int64(max(d, 0)) + l.tau
}

// take applies GCRA to one bucket whose theoretical arrival time is *tat.
func (l *Limiter) take(tat *int64, now int64) Result {
	res := Result{Limit: l.cfg.Burst}
	base := max(*tat, now)
	next := base + l.interval
	if next-now > l.tau {
		res.RetryAfter = time.Duration(next - now - l.tau)
		res.Reset = time.Duration(base - now)
		return res
	}
	*tat = next
	res.Allowed = true
	res.Remaining = int((l.tau - (next - now)) / l.interval)
	res.Reset = time.Duration(next - now)
	return res
}

// Len returns the number of keys tracked (idle keys not yet dropped
// included).
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		n += len(sh.idx)
		sh.mu.Unlock()
	}
	return n
}
