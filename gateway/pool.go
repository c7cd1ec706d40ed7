package gateway

import (
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plexushq/plexus/balance"
	"github.com/plexushq/plexus/breaker"
	"github.com/plexushq/plexus/internal/h1"
	"github.com/plexushq/plexus/registry"
	"github.com/plexushq/plexus/retry"
)

// maxInstanceBreakers bounds the per-instance breakers kept per service.
const maxInstanceBreakers = 1024

// service is the gateway's runtime state for one registry service: its
// breakers, retry budget and upstreams. It outlives registry changes and
// configuration reloads; the pool it serves from is rebuilt when the
// registry snapshot's generation changes.
type service struct {
	name    string
	g       *Gateway
	cur     atomic.Pointer[pool]
	budget  atomic.Pointer[retry.Budget] // rebuilt when retries.budget changes
	mu      sync.Mutex                   // guards what follows and rebuilds
	cfg     *settings                    // settings the breakers were built with
	breaker *breaker.Breaker
	inst    *breaker.Group
	picker  balance.Picker       // per service: weighted and round-robin keep state per set
	ups     map[string]*upstream // by instance id, kept across generations
}

// pool is an immutable view of a service's healthy instances for picking.
type pool struct {
	gen     uint64
	cfg     *settings
	set     *balance.Set
	ups     []*upstream // same order as set
	picker  balance.Picker
	breaker *breaker.Breaker   // the service's; nil when breakers are off
	brs     []*breaker.Breaker // the instances', same order as set
	ejected atomic.Uint64
}

// upstream is one instance as the gateway uses it.
type upstream struct {
	id       string
	base     *url.URL
	addr     h1.Upstream
	basePath string // base path without trailing slash, escaped
	ep       *balance.Endpoint

	fails        atomic.Int32 // consecutive failures
	ejectedUntil atomic.Int64 // unix nanos; 0 = not ejected
	ejections    int          // guarded by service.mu; grows the cool-down
	lastEject    time.Time    // guarded by service.mu
}

// serviceFor returns the runtime state of a known service, creating it.
func (g *Gateway) serviceFor(name string) *service {
	if v, ok := g.services.Load(name); ok {
		return v.(*service)
	}
	s := &service{name: name, g: g, ups: map[string]*upstream{}}
	v, _ := g.services.LoadOrStore(name, s)
	return v.(*service)
}

// poolFor returns the pool for snap, rebuilding it when the registry or the
// configuration changed since the last request.
func (s *service) poolFor(snap *registry.ServiceSnapshot, cfg *settings) *pool {
	p := s.cur.Load()
	if p != nil && p.gen == snap.Gen && p.cfg == cfg {
		return p
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p = s.cur.Load(); p != nil && p.gen == snap.Gen && p.cfg == cfg {
		return p
	}
	s.configure(cfg)
	p = &pool{gen: snap.Gen, cfg: cfg, breaker: s.breaker, picker: s.picker}
	eps := make([]*balance.Endpoint, 0, len(snap.Healthy))
	seen := make(map[string]bool, len(snap.Healthy))
	for _, in := range snap.Healthy {
		u := s.upstreamFor(in)
		if u == nil {
			continue
		}
		seen[in.ID] = true
		p.ups = append(p.ups, u)
		p.brs = append(p.brs, s.instBreaker(u.id))
		eps = append(eps, u.ep)
		if until := u.ejectedUntil.Load(); until != 0 && len(p.ups) <= 64 {
			p.ejected.Store(p.ejected.Load() | 1<<uint(len(p.ups)-1))
		}
	}
	for id := range s.ups {
		if !seen[id] && !instanceKnown(snap, id) {
			delete(s.ups, id) // gone from the registry
		}
	}
	p.set = balance.NewSet(eps)
	s.cur.Store(p)
	return p
}

func instanceKnown(snap *registry.ServiceSnapshot, id string) bool {
	for _, in := range snap.Instances {
		if in.ID == id {
			return true
		}
	}
	return false
}

// configure (re)builds the breakers when the breaker settings changed.
func (s *service) configure(cfg *settings) {
	old := s.cfg
	s.cfg = cfg
	if old == nil || old.strategy != cfg.strategy {
		s.picker, _ = balance.New(cfg.strategy) // validated at compile
	}
	if old == nil || old.budget != cfg.budget {
		s.budget.Store(retry.NewBudget(cfg.budget, retry.DefaultMinPerSecond, s.g.clock))
	}
	if old != nil && old.breaker == cfg.breaker && old.brOff == cfg.brOff {
		return
	}
	s.breaker, s.inst = nil, nil
	if !cfg.brOff {
		opts := []breaker.Option{breaker.OnStateChange(s.g.breakerChanged)}
		if s.g.opts.Clock != nil {
			opts = append(opts, breaker.WithClock(s.g.opts.Clock))
		}
		s.breaker = breaker.New(s.name, cfg.breaker, opts...)
		s.inst = breaker.NewGroup(cfg.breaker, maxInstanceBreakers, opts...)
	}
}

func (s *service) instBreaker(id string) *breaker.Breaker {
	if s.inst == nil {
		return nil
	}
	return s.inst.Get(s.name + "/" + id)
}

// upstreamFor returns the upstream of an instance, keeping its counters
// when the instance is unchanged; nil when its URL is unusable.
func (s *service) upstreamFor(in *registry.Instance) *upstream {
	if u, ok := s.ups[in.ID]; ok && u.base.String() == in.URL && u.ep.Weight() == weightOf(in) {
		return u
	}
	base, err := url.Parse(in.URL)
	var addr h1.Upstream
	if err == nil {
		addr, err = h1.UpstreamOf(base)
	}
	if err != nil {
		s.g.log.Warn("gateway: instance has an unusable URL; skipped", "service", s.name, "instance", in.ID, "url", in.URL)
		return nil
	}
	u := &upstream{id: in.ID, base: base, addr: addr, basePath: strings.TrimRight(base.EscapedPath(), "/"),
		ep: balance.NewEndpoint(in.ID, weightOf(in))}
	if old, ok := s.ups[in.ID]; ok { // URL or weight changed: keep the passive-health history
		u.ejections, u.lastEject = old.ejections, old.lastEject
		u.ejectedUntil.Store(old.ejectedUntil.Load())
	}
	s.ups[in.ID] = u
	return u
}

func weightOf(in *registry.Instance) int {
	if in.Weight <= 0 {
		return 1
	}
	return in.Weight
}

// exclusions returns the ejected instances still cooling down, dropping
// expired ejections from the mask.
func (p *pool) exclusions(now time.Time) balance.Mask {
	m := p.ejected.Load()
	if m == 0 {
		return 0
	}
	nowN := now.UnixNano()
	live := m
	for i, u := range p.ups {
		if i >= 64 {
			break
		}
		if m&(1<<uint(i)) != 0 && u.ejectedUntil.Load() <= nowN {
			live &^= 1 << uint(i)
		}
	}
	if live != m {
		p.ejected.CompareAndSwap(m, live)
	}
	return balance.Mask(live)
}

func (p *pool) markEjected(idx int) {
	for {
		m := p.ejected.Load()
		if p.ejected.CompareAndSwap(m, m|1<<uint(idx)) {
			return
		}
	}
}

// succeeded records a good answer from an upstream.
func (u *upstream) succeeded() {
	if u.fails.Load() != 0 {
		u.fails.Store(0)
	}
}

// failed records a failure and ejects the upstream after enough of them in
// a row, unless that would eject too many of the pool. It reports whether
// the upstream was ejected now.
func (s *service) failed(p *pool, idx int, now time.Time) bool {
	u := p.ups[idx]
	e := p.cfg.eject
	if e.off || u.fails.Add(1) < e.threshold || idx >= 64 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.ejectedUntil.Load() > now.UnixNano() {
		return false // already ejected (concurrent failures)
	}
	if !canEject(p, now, e.maxPercent) {
		return false
	}
	// Repeated ejections double the cool-down; a long quiet spell forgets them.
	if !u.lastEject.IsZero() && now.Sub(u.lastEject) > 2*e.max {
		u.ejections = 0
	}
	d := e.base << min(u.ejections, 20)
	if d > e.max || d <= 0 {
		d = e.max
	}
	u.ejections++
	u.lastEject = now
	u.fails.Store(0)
	u.ejectedUntil.Store(now.Add(d).UnixNano())
	p.markEjected(idx)
	if cur := s.cur.Load(); cur != p { // the registry changed meanwhile
		for i, x := range cur.ups {
			if x == u && i < 64 {
				cur.markEjected(i)
			}
		}
	}
	s.g.log.Warn("gateway: instance ejected after consecutive failures", "service", s.name, "instance", u.id,
		"for", d, "ejections", u.ejections)
	s.g.metrics.ejections.WithLabelValues(s.name).Inc()
	return true
}

// canEject keeps at least one instance, and at most maxPercent (at least
// one) of the pool ejected.
func canEject(p *pool, now time.Time, maxPercent int) bool {
	n := min(len(p.ups), 64)
	if n < 2 {
		return false
	}
	ejected := 0
	live := uint64(p.exclusions(now))
	for ; live != 0; live &= live - 1 {
		ejected++
	}
	allowed := max(1, n*maxPercent/100)
	if allowed >= n {
		allowed = n - 1
	}
	return ejected < allowed
}
