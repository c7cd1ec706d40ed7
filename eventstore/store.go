package eventstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/plexushq/plexus/engine"
)

// Middleware runs on every event of an append, in order, before anything is
// stored. It may enrich the event (set metadata, a source) or refuse it by
// returning an error; any error refuses the whole append. Errors that do not
// wrap ErrInvalid are reported as ErrRejected.
type Middleware func(ctx context.Context, stream string, e *Event) error

// Config configures a Store. The zero value works.
type Config struct {
	// Middlewares run before every append, in order. More can be added
	// with Store.Use.
	Middlewares []Middleware
	// TracerProvider traces appends and handlers. Default: none.
	TracerProvider trace.TracerProvider
	// Metrics receives the plexus_events_* metrics. Default: none.
	Metrics prometheus.Registerer
	// Logger for subscriptions and parking. Default: no logs.
	Logger *slog.Logger
	// VersionCache bounds the number of streams whose last version and
	// position the store remembers to append without a read. Default 65536.
	VersionCache int
	// DuplicateWindow is how long a writer-supplied event id deduplicates
	// a retried append. Default 2m.
	DuplicateWindow time.Duration
	// RequestTimeout bounds each engine call when ctx has no deadline.
	// Default 10s.
	RequestTimeout time.Duration
}

func (c *Config) defaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.VersionCache <= 0 {
		c.VersionCache = 1 << 16
	}
	if c.DuplicateWindow <= 0 {
		c.DuplicateWindow = 2 * time.Minute
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 10 * time.Second
	}
}

// Store is the event store and bus. Build one with New and Start it.
type Store struct {
	cfg      Config
	eng      *engine.Engine
	nc       *nats.Conn
	js       jetstream.JetStream
	log      *slog.Logger
	tracer   trace.Tracer
	metrics  *metrics
	mws      atomic.Pointer[[]Middleware]
	versions *versionCache
	getSubj  string
	// msgGetSubj is the stream leader's message get (lastConfirmed).
	msgGetSubj string
	// from is the sequence of the format marker (layout), known once
	// Start has run.
	from atomic.Uint64

	snapshots jetstream.KeyValue
	parked    jetstream.KeyValue

	mu      sync.Mutex
	subs    map[*Subscription]struct{}
	stopped bool
}

// New prepares a store on eng; Start creates what it needs in the engine.
func New(eng *engine.Engine, cfg Config) *Store {
	cfg.defaults()
	s := &Store{
		cfg:        cfg,
		eng:        eng,
		nc:         eng.Conn(),
		js:         eng.JetStream(),
		log:        cfg.Logger,
		tracer:     tracerFrom(cfg.TracerProvider),
		metrics:    newMetrics(cfg.Metrics),
		versions:   newVersionCache(cfg.VersionCache),
		getSubj:    "$JS.API.DIRECT.GET." + engine.StreamEvents,
		msgGetSubj: "$JS.API.STREAM.MSG.GET." + engine.StreamEvents,
		subs:       map[*Subscription]struct{}{},
	}
	mws := append([]Middleware(nil), cfg.Middlewares...)
	s.mws.Store(&mws)
	return s
}

// StreamConfig is the JetStream configuration of the events stream. Events
// are never removed: no limits, deletes and purges denied.
func StreamConfig(dupWindow time.Duration) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:               engine.StreamEvents,
		Description:        "Plexus event store; the sequence is the global position",
		Subjects:           []string{subjectRoot + ">"},
		Storage:            jetstream.FileStorage,
		Retention:          jetstream.LimitsPolicy,
		Discard:            jetstream.DiscardNew,
		MaxMsgs:            -1,
		MaxBytes:           -1,
		MaxAge:             0,
		Duplicates:         dupWindow,
		AllowDirect:        true,
		AllowAtomicPublish: true,
		DenyDelete:         true,
		DenyPurge:          true,
	}
}

// Start creates or updates the events stream and the snapshot and parked
// buckets. It is safe to call on every start.
func (s *Store) Start(ctx context.Context) error {
	if _, err := s.eng.EnsureStream(ctx, StreamConfig(s.cfg.DuplicateWindow)); err != nil {
		return fmt.Errorf("eventstore: %w", err)
	}
	l, err := s.ensureFormat(ctx)
	if err != nil {
		return err
	}
	s.from.Store(l.from)
	if s.snapshots, err = s.eng.EnsureKV(ctx, jetstream.KeyValueConfig{
		Bucket: engine.BucketSnapshots, Description: "Plexus event-stream snapshots, key = stream id",
		History: 1, Storage: jetstream.FileStorage,
	}); err != nil {
		return fmt.Errorf("eventstore: %w", err)
	}
	if s.parked, err = s.eng.EnsureKV(ctx, jetstream.KeyValueConfig{
		Bucket: engine.BucketParkedEvents, Description: "Plexus parked events, key = <group>.<position>",
		History: 1, Storage: jetstream.FileStorage,
	}); err != nil {
		return fmt.Errorf("eventstore: %w", err)
	}
	return nil
}

// Stop stops every subscription started from this store, bounded by ctx.
func (s *Store) Stop(ctx context.Context) error {
	s.mu.Lock()
	s.stopped = true
	subs := make([]*Subscription, 0, len(s.subs))
	for sub := range s.subs {
		subs = append(subs, sub)
	}
	s.mu.Unlock()
	var errs []error
	for _, sub := range subs {
		if err := sub.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Use adds a publish middleware after the ones already present.
func (s *Store) Use(mw Middleware) {
	for {
		old := s.mws.Load()
		next := append(append([]Middleware(nil), *old...), mw)
		if s.mws.CompareAndSwap(old, &next) {
			return
		}
	}
}

// pullBytes bounds what one consumer of the store asks the engine for at
// once. It must exceed the largest message (the largest append), or the
// consumer would stall on it.
func (s *Store) pullBytes() int {
	return max(2<<20, int(s.nc.MaxPayload())+64<<10)
}

// layout maps the store's sequences and positions (see layout).
func (s *Store) layout() layout { return layout{from: s.from.Load()} }

// withTimeout gives ctx the store's default deadline when it has none.
func (s *Store) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.cfg.RequestTimeout)
}

// versionCache remembers each stream's last version and position so an
// append needs no read. The engine checks every append against the
// position, so a stale entry costs a retry, never a wrong version.
type versionCache struct {
	mu  sync.Mutex
	m   map[string]verPos
	max int
}

type verPos struct {
	version int64
	seq     uint64 // engine sequence of the stream's last message
	pos     uint64 // position of the stream's last event
}

func newVersionCache(max int) *versionCache {
	return &versionCache{m: make(map[string]verPos, 1024), max: max}
}

func (c *versionCache) get(stream string) (verPos, bool) {
	c.mu.Lock()
	v, ok := c.m[stream]
	c.mu.Unlock()
	return v, ok
}

func (c *versionCache) put(stream string, v verPos) {
	c.mu.Lock()
	if old, ok := c.m[stream]; !ok || old.seq < v.seq {
		if !ok && len(c.m) >= c.max {
			// Evict an arbitrary eighth; Go's map order is random enough.
			drop := c.max/8 + 1
			for k := range c.m {
				delete(c.m, k)
				if drop--; drop == 0 {
					break
				}
			}
		}
		c.m[stream] = v
	}
	c.mu.Unlock()
}

func (c *versionCache) drop(stream string) {
	c.mu.Lock()
	delete(c.m, stream)
	c.mu.Unlock()
}

// Stats summarizes the store for health pages.
type Stats struct {
	// Appends stored in total: engine messages, one per append whatever
	// its number of events (one per event for events stored in the first
	// format).
	Appends uint64 `json:"appends"`
	// LastPosition is the position of the newest event.
	LastPosition uint64 `json:"lastPosition"`
}

// Stats reads the events stream's state.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	st, err := s.js.Stream(ctx, engine.StreamEvents)
	if err != nil {
		return Stats{}, fmt.Errorf("eventstore: stats: %w", err)
	}
	state := st.CachedInfo().State
	out := Stats{Appends: state.Msgs}
	l := s.layout()
	if l.from > 0 && state.LastSeq >= l.from && out.Appends > 0 {
		out.Appends-- // the format marker
	}
	if state.LastSeq == 0 {
		return out, nil
	}
	evs, err := s.readMessage(ctx, state.LastSeq)
	if err != nil {
		return Stats{}, err
	}
	switch {
	case len(evs) > 0:
		out.LastPosition = evs[len(evs)-1].Position
	case state.LastSeq > 1:
		out.LastPosition = state.LastSeq - 1 // the marker is last: the first format's last event
	}
	return out, nil
}
