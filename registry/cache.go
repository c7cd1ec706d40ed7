package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// CacheConfig configures a Cache. The zero value works.
type CacheConfig struct {
	// Metrics receives plexus_registry_instances{service,status}; nil
	// means none.
	Metrics prometheus.Registerer
	// Logger for feed errors. Default slog.Default().
	Logger *slog.Logger
	// MaxBackoff caps the wait between reconnects of the feed. Default 5s.
	MaxBackoff time.Duration
	// Resync is how often the feed starts over from a fresh snapshot
	// (±10%), so that a removal the feed could not deliver (a disconnection
	// longer than the bucket keeps removal markers) does not linger.
	// Default 5m.
	Resync time.Duration
}

// Cache is a local, watch-fed copy of the registry. Reads never wait on
// the network and never take a lock: they load an immutable state from an
// atomic pointer that the feed goroutine replaces on every change.
//
// NewCache feeds it from the engine's bucket (inside a node); NewHTTPCache
// from the admin API's GET /v1/watch stream (for programs outside a node).
// Both reconnect with backoff and rebuild from a fresh snapshot, so
// removals missed while disconnected are not kept.
type Cache struct {
	cfg   CacheConfig
	open  func(ctx context.Context) (cacheStream, []*Instance, error)
	state atomic.Pointer[cacheState]

	mu      sync.Mutex // guards the lifecycle fields below
	cancel  context.CancelFunc
	done    chan struct{}
	metrics prometheus.Collector
	feed    feedState // for plexus_registry_cache_* (metrics.go)
}

// cacheStream is one connection of a feed: a snapshot, then changes.
type cacheStream interface {
	Next(ctx context.Context) (Event, error)
	// Pending reports that Next would not wait (lets the feed batch).
	Pending() bool
	// FreshAt is when the stream last provably had every change.
	FreshAt() time.Time
	Stop() error
}

// cacheState is one immutable version of the cache.
type cacheState struct {
	byName  map[string]*ServiceSnapshot
	sorted  []*ServiceSnapshot
	changed chan struct{}
}

func newCache(cfg CacheConfig, open func(context.Context) (cacheStream, []*Instance, error)) *Cache {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 5 * time.Minute
	}
	c := &Cache{cfg: cfg, open: open}
	c.feed.created = time.Now()
	c.state.Store(&cacheState{byName: map[string]*ServiceSnapshot{}, changed: make(chan struct{})})
	return c
}

// NewCache returns a cache fed by the store's watch (the engine's KV
// watch). Start it before use.
func NewCache(s *Store, cfg CacheConfig) *Cache {
	return newCache(cfg, func(ctx context.Context) (cacheStream, []*Instance, error) {
		w, initial, err := s.Watch(ctx, "")
		if err != nil {
			return nil, nil, err
		}
		return kvStream{w}, initial, nil
	})
}

type kvStream struct{ *Watcher }

func (k kvStream) Pending() bool { return len(k.updates()) > 0 }

// Service returns the snapshot of one service, nil when it has no
// instances. It never waits on the network.
func (c *Cache) Service(name string) *ServiceSnapshot {
	return c.state.Load().byName[name]
}

// Services returns every service's snapshot, sorted by name. The slice is
// the caller's; the snapshots are shared and must not be modified.
func (c *Cache) Services() []*ServiceSnapshot {
	return slices.Clone(c.state.Load().sorted)
}

// FreshAt is when the cache last proved that its view held every change
// the registry had (zero before the first snapshot). Inside a node the
// feed proves it every second or so (StoreConfig.WatchCheck); while the
// feed is down or stalled it stays put.
func (c *Cache) FreshAt() time.Time { return c.feed.freshAt() }

// ViewAge is how old the view may be: the time since FreshAt (since the
// cache was made, before the first snapshot). /health and the
// plexus_registry_cache_stale_seconds gauge report it; a gateway-only node
// is ready while it is below the node's bound.
func (c *Cache) ViewAge() time.Duration { return c.feed.age(time.Now()) }

// Changed returns a channel that is closed at the next change of the
// cache; after it fires, read again and call Changed again.
func (c *Cache) Changed() <-chan struct{} {
	return c.state.Load().changed
}

// Start connects the feed and returns once the first snapshot is loaded,
// so a gateway starts with the registry's content. If ctx ends first, the
// feed is stopped and ctx's error returned.
func (c *Cache) Start(ctx context.Context) error {
	c.mu.Lock()
	if c.cancel != nil {
		c.mu.Unlock()
		return errors.New("registry: cache already started")
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.cancel, c.done = cancel, make(chan struct{})
	ready := make(chan struct{})
	go c.run(rctx, ready)
	c.mu.Unlock()
	if c.cfg.Metrics != nil {
		col := &cacheCollector{c: c}
		if err := c.cfg.Metrics.Register(col); err == nil {
			c.metrics = col
		} else if !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			c.cfg.Logger.Warn("registry: cache metrics not registered", "err", err)
		}
	}
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		_ = c.Stop(context.Background())
		return fmt.Errorf("registry: cache: first snapshot: %w", ctx.Err())
	}
}

// Stop ends the feed, bounded by ctx. The cache keeps answering from its
// last state.
func (c *Cache) Stop(ctx context.Context) error {
	c.mu.Lock()
	cancel, done := c.cancel, c.done
	c.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	if c.metrics != nil {
		c.cfg.Metrics.Unregister(c.metrics)
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("registry: cache stop: %w", ctx.Err())
	}
}

// run is the feed goroutine: connect, load the snapshot, apply changes;
// on any error wait (exponential backoff with jitter) and start over.
func (c *Cache) run(ctx context.Context, ready chan struct{}) {
	defer close(c.done)
	b := &cacheBuilder{cur: c.state.Load()}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		resync := c.cfg.Resync - c.cfg.Resync/10 + rand.N(c.cfg.Resync/5+1)
		sctx, cancel := context.WithTimeout(ctx, resync)
		err := c.session(sctx, b, ready, &backoff)
		planned := sctx.Err() != nil
		cancel()
		if ctx.Err() != nil {
			return
		}
		if planned {
			continue // time for a fresh snapshot
		}
		c.feed.interruptions.Add(1)
		if errors.Is(err, ErrWatchStalled) {
			// The engine answers but the feed does not deliver: start
			// over now, from a fresh snapshot.
			c.feed.stalls.Add(1)
			c.cfg.Logger.Warn("registry: cache feed stalled; resyncing", "err", err)
			continue
		}
		c.cfg.Logger.Warn("registry: cache feed interrupted; reconnecting", "err", err, "in", backoff)
		wait := backoff/2 + rand.N(backoff/2+1)
		backoff = min(backoff*2, c.cfg.MaxBackoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// session runs one connection of the feed until it fails.
func (c *Cache) session(ctx context.Context, b *cacheBuilder, ready chan struct{}, backoff *time.Duration) error {
	st, initial, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer st.Stop()
	b.reset(initial)
	c.publish(b)
	if ready != nil {
		select {
		case <-ready:
		default:
			close(ready)
		}
	}
	*backoff = 100 * time.Millisecond
	c.feed.up(st.FreshAt)
	defer c.feed.down()
	for {
		ev, err := st.Next(ctx)
		if err != nil {
			return err
		}
		b.apply(ev)
		for st.Pending() {
			if ev, err = st.Next(ctx); err != nil {
				c.publish(b)
				return err
			}
			b.apply(ev)
		}
		c.publish(b)
	}
}

func (c *Cache) publish(b *cacheBuilder) {
	next, ok := b.build()
	if !ok {
		return
	}
	old := c.state.Swap(next)
	close(old.changed)
}

// cacheBuilder is the feed goroutine's mutable view; build turns it into
// the next immutable state, rebuilding only the services that changed.
type cacheBuilder struct {
	services map[string]map[string]*Instance
	dirty    map[string]bool
	all      bool
	gen      uint64
	cur      *cacheState
}

func (b *cacheBuilder) reset(list []*Instance) {
	b.services = make(map[string]map[string]*Instance)
	for _, inst := range list {
		b.put(inst)
	}
	b.all = true
}

func (b *cacheBuilder) put(inst *Instance) {
	m := b.services[inst.Service]
	if m == nil {
		m = make(map[string]*Instance)
		b.services[inst.Service] = m
	}
	m[inst.ID] = inst
	b.mark(inst.Service)
}

func (b *cacheBuilder) apply(ev Event) {
	switch ev.Type {
	case EventPut:
		if ev.Instance != nil {
			b.put(ev.Instance)
		}
	case EventDelete:
		if m := b.services[ev.Service]; m != nil {
			delete(m, ev.ID)
			if len(m) == 0 {
				delete(b.services, ev.Service)
			}
		}
		b.mark(ev.Service)
	}
}

func (b *cacheBuilder) mark(service string) {
	if b.dirty == nil {
		b.dirty = make(map[string]bool)
	}
	b.dirty[service] = true
}

// build returns the next state, or false when nothing changed.
func (b *cacheBuilder) build() (*cacheState, bool) {
	if !b.all && len(b.dirty) == 0 {
		return nil, false
	}
	names := b.dirty
	if b.all {
		names = make(map[string]bool, len(b.services)+len(b.cur.byName))
		for n := range b.services {
			names[n] = true
		}
		for n := range b.cur.byName {
			names[n] = true
		}
	}
	byName := maps.Clone(b.cur.byName)
	for name := range names {
		old := byName[name]
		snap := b.snapshot(name, old)
		if snap == nil {
			delete(byName, name)
		} else {
			byName[name] = snap
		}
	}
	sorted := slices.SortedFunc(maps.Values(byName), func(a, b *ServiceSnapshot) int { return strings.Compare(a.Name, b.Name) })
	b.cur = &cacheState{byName: byName, sorted: sorted, changed: make(chan struct{})}
	b.dirty, b.all = nil, false
	return b.cur, true
}

// snapshot builds a service's snapshot; it keeps old's Gen when nothing
// that routing depends on changed (only timestamps or check output).
func (b *cacheBuilder) snapshot(name string, old *ServiceSnapshot) *ServiceSnapshot {
	m := b.services[name]
	if len(m) == 0 {
		return nil
	}
	snap := &ServiceSnapshot{Name: name, Instances: make([]*Instance, 0, len(m))}
	for _, inst := range m {
		snap.Instances = append(snap.Instances, inst)
	}
	slices.SortFunc(snap.Instances, func(a, b *Instance) int { return strings.Compare(a.ID, b.ID) })
	for _, inst := range snap.Instances {
		if inst.Status == StatusHealthy {
			snap.Healthy = append(snap.Healthy, inst)
		}
	}
	if old != nil && sameRouting(old.Instances, snap.Instances) {
		snap.Gen = old.Gen
	} else {
		b.gen++
		snap.Gen = b.gen
	}
	return snap
}

// sameRouting reports whether two sorted instance lists route alike.
func sameRouting(a, b []*Instance) bool {
	return slices.EqualFunc(a, b, func(x, y *Instance) bool {
		return x.ID == y.ID && x.URL == y.URL && x.Weight == y.Weight && x.Status == y.Status &&
			x.Version == y.Version && x.Zone == y.Zone && slices.Equal(x.Tags, y.Tags) && maps.Equal(x.Metadata, y.Metadata)
	})
}

// ServiceSummary counts a service's instances.
type ServiceSummary struct {
	Name      string `json:"name"`
	Instances int    `json:"instances"`
	Healthy   int    `json:"healthy"`
	Unhealthy int    `json:"unhealthy"`
	Draining  int    `json:"draining"`
}

// Summarize counts the instances of a snapshot by status.
func Summarize(s *ServiceSnapshot) ServiceSummary {
	sum := ServiceSummary{Name: s.Name, Instances: len(s.Instances), Healthy: len(s.Healthy)}
	for _, inst := range s.Instances {
		switch inst.Status {
		case StatusUnhealthy:
			sum.Unhealthy++
		case StatusDraining:
			sum.Draining++
		}
	}
	return sum
}

// cacheCollector exports the cache's counts at scrape time, so series of
// removed services disappear without bookkeeping.
type cacheCollector struct{ c *Cache }

var instancesDesc = prometheus.NewDesc("plexus_registry_instances",
	"Registered instances by service and status, as this node's registry cache sees them.",
	[]string{"service", "status"}, nil)

func (cc *cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- instancesDesc
	cc.c.feed.describe(ch)
}

func (cc *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	cc.c.feed.collect(ch)
	for _, s := range cc.c.state.Load().sorted {
		sum := Summarize(s)
		for st, n := range map[Status]int{StatusHealthy: sum.Healthy, StatusUnhealthy: sum.Unhealthy, StatusDraining: sum.Draining} {
			ch <- prometheus.MustNewConstMetric(instancesDesc, prometheus.GaugeValue, float64(n), s.Name, string(st))
		}
	}
}
