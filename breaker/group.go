package breaker

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// DefaultGroupMax is the Group size used when max ≤ 0.
const DefaultGroupMax = 10000

// Group holds named breakers created on first use (one per service, one per
// instance as "service/instance", ...), at most max of them. Beyond max the
// least recently used closed breaker is dropped (it holds no state worth
// keeping); when every breaker is open or half-open, the least recently used
// one is dropped so the map never grows past max. Safe for concurrent use.
type Group struct {
	cfg  Config
	opts []Option
	max  int

	tick atomic.Uint64 // logical clock for recency
	mu   sync.RWMutex
	m    map[string]*member
}

type member struct {
	b    *Breaker
	used atomic.Uint64
}

// NewGroup returns an empty group whose breakers use cfg and opts (the
// OnStateChange callback receives each breaker's name).
func NewGroup(cfg Config, max int, opts ...Option) *Group {
	if max <= 0 {
		max = DefaultGroupMax
	}
	return &Group{cfg: cfg, opts: opts, max: max, m: make(map[string]*member)}
}

// Get returns the breaker named name, creating it (closed) when absent.
func (g *Group) Get(name string) *Breaker {
	g.mu.RLock()
	mb := g.m[name]
	g.mu.RUnlock()
	if mb == nil {
		g.mu.Lock()
		if mb = g.m[name]; mb == nil {
			if len(g.m) >= g.max {
				g.evictLocked()
			}
			mb = &member{b: New(name, g.cfg, g.opts...)}
			g.m[name] = mb
		}
		g.mu.Unlock()
	}
	mb.used.Store(g.tick.Add(1))
	return mb.b
}

// evictLocked drops the least recently used closed breaker, or the least
// recently used one when none is closed. Called with mu held for writing.
func (g *Group) evictLocked() {
	var victim, any string
	var vUsed, aUsed uint64 = ^uint64(0), ^uint64(0)
	for name, mb := range g.m {
		u := mb.used.Load()
		if u < aUsed {
			any, aUsed = name, u
		}
		if u < vUsed && mb.b.State() == Closed {
			victim, vUsed = name, u
		}
	}
	if vUsed == ^uint64(0) {
		victim = any
	}
	delete(g.m, victim)
}

// Remove drops the breaker named name (for instance when the instance is
// deregistered).
func (g *Group) Remove(name string) {
	g.mu.Lock()
	delete(g.m, name)
	g.mu.Unlock()
}

// Len returns the number of breakers held.
func (g *Group) Len() int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return len(g.m)
}

// List returns the Info of every breaker, sorted by name.
func (g *Group) List() []Info {
	g.mu.RLock()
	bs := make([]*Breaker, 0, len(g.m))
	for _, mb := range g.m {
		bs = append(bs, mb.b)
	}
	g.mu.RUnlock()
	out := make([]Info, len(bs))
	for i, b := range bs {
		out[i] = b.Info()
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Name, b.Name) })
	return out
}
