package balance

import (
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"sync/atomic"
)

// Strategy names a balancing algorithm, as written in configuration.
type Strategy string

// The strategies New accepts.
const (
	RoundRobin       Strategy = "round-robin"
	LeastConnections Strategy = "least-connections"
	Random           Strategy = "random"
	Weighted         Strategy = "weighted" // smooth weighted round robin
	P2C              Strategy = "p2c"      // power of two choices, peak EWMA latency × in-flight
	Hash             Strategy = "hash"     // rendezvous hashing of the pick key

	// Default is the strategy used when none is configured.
	Default = P2C
)

// Strategies lists every strategy New accepts, in documentation order.
func Strategies() []Strategy {
	return []Strategy{RoundRobin, LeastConnections, Random, Weighted, P2C, Hash}
}

// ErrUnknownStrategy is returned (wrapped) by New for an unknown name.
var ErrUnknownStrategy = errors.New("unknown balancing strategy")

// Picker chooses an endpoint of a Set. Pick returns the index of the chosen
// endpoint, or -1 when the set is empty or every index is excluded. key is
// only used by Hash (pass HashString of the header, cookie or client IP);
// other strategies ignore it. Pick never allocates and is safe for
// concurrent use.
//
// A Picker keeps the rotation state of one pool of endpoints (round robin's
// position, weighted round robin's current weights): use one Picker per
// service and pass it the successive Sets of that service.
type Picker interface {
	Pick(s *Set, key uint64, exclude Mask) int
}

// New returns a Picker for strategy s; the empty string selects Default.
// An unknown name is an error wrapping ErrUnknownStrategy.
func New(s Strategy) (Picker, error) { return NewSeeded(s, rand.Uint64()) }

// NewSeeded is New with a fixed seed for the strategies that draw random
// numbers (random, p2c), so that a sequence of picks is reproducible.
func NewSeeded(s Strategy, seed uint64) (Picker, error) {
	switch s {
	case RoundRobin:
		return &roundRobin{}, nil
	case LeastConnections:
		return &leastConn{}, nil
	case Random:
		p := &random{}
		p.rng.seed(seed)
		return p, nil
	case Weighted:
		return &weighted{}, nil
	case P2C, "":
		p := &p2c{}
		p.rng.seed(seed)
		return p, nil
	case Hash:
		return hashPicker{}, nil
	}
	return nil, fmt.Errorf("%w: %q (want one of round-robin, least-connections, random, weighted, p2c, hash)", ErrUnknownStrategy, string(s))
}

// rng is a goroutine-safe, allocation-free SplitMix64 generator: one atomic
// add per number.
type rng struct{ state atomic.Uint64 }

func (r *rng) seed(s uint64) { r.state.Store(s) }

func (r *rng) next() uint64 { return mix64(r.state.Add(0x9e3779b97f4a7c15)) }

// below maps 64 random bits to [0, n) (Lemire's multiply-shift).
func below(r uint64, n int) int {
	hi, _ := bits.Mul64(r, uint64(n))
	return int(hi)
}

// mix64 is the SplitMix64 / MurmurHash3 finaliser: a bijection with good
// avalanche.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// HashString hashes s (FNV-1a, then mixed) for use as a Pick key. It is
// stable across processes and versions, so every gateway node maps a key to
// the same endpoint.
func HashString(s string) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= prime
	}
	return mix64(h)
}
