package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/plexushq/plexus/clock"
	"github.com/plexushq/plexus/engine"
)

// Options tune a Broker. The zero value works.
type Options struct {
	// TracerProvider records publish and consume spans. Nil: no spans
	// (trace context is still carried in message headers).
	TracerProvider trace.TracerProvider
	// Metrics receives the plexus_queue_* metrics. Nil: none.
	Metrics prometheus.Registerer
	// Logger for warnings. Default slog.Default().
	Logger *slog.Logger
	// Clock tells the time for TTL, delay and receipt decisions. Default
	// the wall clock.
	Clock clock.Clock
	// PollInterval bounds how late a waiting receiver notices messages that
	// become ready without a publish (redeliveries, fired delays). Default 200ms.
	PollInterval time.Duration
	// ConfigRefresh is how long a queue's options are cached before they
	// are read again from the engine (changes made on other nodes). Default 1s.
	ConfigRefresh time.Duration
	// Replicas for queue streams and the options bucket. Default 1.
	Replicas int
	// RequestTimeout bounds engine calls made without a deadline of the
	// caller's (ledger writes of a receive, acks' flush). Default 5s.
	RequestTimeout time.Duration
	// MaxQueues caps the number of queues, dead-letter queues included;
	// creating one more is ErrTooManyQueues. Default DefaultMaxQueues.
	MaxQueues int
	// HousekeepingInterval is how often a started broker dead-letters
	// expired messages and flushes counters (Start). Default 1s.
	HousekeepingInterval time.Duration
	// Writable, when set, is asked before every write that adds messages
	// (publish, redrive, create); its error refuses the write. A node
	// passes its engine's Writable (engine.ErrStorageFull on a full disk).
	Writable func() error
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Clock = clock.Or(o.Clock)
	if o.PollInterval <= 0 {
		o.PollInterval = 200 * time.Millisecond
	}
	if o.ConfigRefresh <= 0 {
		o.ConfigRefresh = time.Second
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.TracerProvider == nil {
		o.TracerProvider = noop.NewTracerProvider()
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 5 * time.Second
	}
	if o.MaxQueues <= 0 {
		o.MaxQueues = DefaultMaxQueues
	}
	if o.HousekeepingInterval <= 0 {
		o.HousekeepingInterval = time.Second
	}
	if o.Writable == nil {
		o.Writable = func() error { return nil }
	}
}

// Broker is the queue semantics on JetStream: it creates queues, publishes,
// receives, acknowledges and dead-letters. It is safe for concurrent use;
// the HTTP API and the Go SDK are both built on it.
type Broker struct {
	js        jetstream.JetStream
	nc        *nats.Conn
	kv        jetstream.KeyValue
	ledger    jetstream.Stream       // the ledger of held counts (ledger.go)
	key       atomic.Pointer[[]byte] // the receipt key, loaded on first use (secret.go)
	keyMu     sync.Mutex
	macs      sync.Pool // HMACs keyed with it (receipt.go)
	opts      Options
	log       *slog.Logger
	tracer    trace.Tracer
	spans     bool // a TracerProvider was given
	metrics   *metrics
	pullers   *pullers
	holds     *holds // the deliveries handed out with receipts (holds.go)
	settles   *nats.Subscription
	stopHolds chan struct{}
	holdsDone chan struct{}

	mu     sync.Mutex
	queues map[string]*qstate // one per queue this client used; bounded by the queues that exist

	seen map[string]time.Time // queue+consumer name → last receive, bounded

	lastErrMu sync.Mutex
	lastErr   map[uint64]string // stream seq → last nack error text, bounded by maxLastErr

	closed atomic.Bool

	hkMu           sync.Mutex
	hkStop, hkDone chan struct{}      // housekeeping (housekeeping.go); nil when not started
	hkHalt         context.CancelFunc // ends a housekeeping round in flight
}

const (
	statsKeyPrefix = "_stats."
	maxLastErr     = 10000
	dedupeWindow   = 2 * time.Minute
)

// New builds a client on a JetStream context (engine.JetStream() inside a
// node, or jetstream.New(nc) in any Go program connected to the engine).
func New(ctx context.Context, js jetstream.JetStream, opts Options) (*Broker, error) {
	spans := opts.TracerProvider != nil
	opts.defaults()
	kv, err := engine.EnsureKVOn(ctx, js, jetstream.KeyValueConfig{
		Bucket: engine.BucketQueues, Description: "Plexus queue options", History: 1,
		Replicas: opts.Replicas, Storage: jetstream.FileStorage,
	}, opts.Logger)
	if err != nil {
		return nil, fmt.Errorf("queue: options bucket: %w", err)
	}
	c := &Broker{
		js: js, nc: js.Conn(), kv: kv, opts: opts, log: opts.Logger,
		tracer:  opts.TracerProvider.Tracer("github.com/plexushq/plexus/queue"),
		spans:   spans,
		queues:  map[string]*qstate{},
		lastErr: map[uint64]string{},
		pullers: &pullers{nc: js.Conn()},
		holds:   newHolds(),
	}
	if err := c.ensureLedger(ctx); err != nil {
		return nil, err
	}
	if c.ledger, err = js.Stream(ctx, LedgerStream); err != nil {
		return nil, fmt.Errorf("queue: delivery ledger: %w", engine.Classify(err))
	}
	c.metrics = newMetrics(opts.Metrics)
	if c.settles, err = c.nc.Subscribe(settleSubject(c.holds.id), c.serveSettle); err != nil {
		return nil, fmt.Errorf("queue: receipts: %w", engine.Classify(err))
	}
	c.stopHolds, c.holdsDone = make(chan struct{}), make(chan struct{})
	go c.runHolds(c.stopHolds, c.holdsDone)
	return c, nil
}

// Close releases the client's subscriptions. Subscriptions of Subscribe
// must be stopped first.
func (b *Broker) Close() {
	if b.closed.Swap(true) {
		return
	}
	_ = b.settles.Unsubscribe()
	close(b.stopHolds)
	<-b.holdsDone
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, q := range b.queues {
		q.bell.close()
	}
	b.queues = map[string]*qstate{}
	b.pullers.closeAll()
}

// qstate is what a client knows about one queue.
type qstate struct {
	n      *names
	cfg    atomic.Pointer[Config]
	loaded atomic.Int64 // unix nanos of the last options read
	stream jetstream.Stream
	// levels has bit p set when priority level p has its consumer. Levels
	// are created on first use, so a queue that uses one priority pays for
	// one consumer (the engine checks every consumer's interest on each ack).
	levels  atomic.Uint32
	levelMu sync.Mutex
	bell    *doorbell
	m       queueMetrics

	sizeMu sync.Mutex
	sizeAt time.Time
	size   int64
	// pubMu lets one publisher of this client at a time check the size
	// and publish while the queue is near its maxSize (size.go).
	pubMu sync.Mutex

	// counter deltas not yet flushed to the engine
	published, processed, failed, deadLettered atomic.Int64
	consumersActive, consumersTotal            atomic.Int64
}

func (b *Broker) jitter() float64 { return mrand.Float64() }

// state returns the queue's state, loading its options from the engine
// when unknown or stale; ErrQueueNotFound when it does not exist.
func (b *Broker) state(ctx context.Context, name string) (*qstate, error) {
	if b.closed.Load() {
		return nil, ErrClosed
	}
	if !ValidName(name) {
		return nil, fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	b.mu.Lock()
	q := b.queues[name]
	b.mu.Unlock()
	if q != nil && time.Duration(b.opts.Clock.Now().UnixNano()-q.loaded.Load()) < b.opts.ConfigRefresh {
		return q, nil
	}
	e, err := b.kv.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		b.forget(name)
		return nil, notFound(name)
	}
	if err != nil {
		return nil, fmt.Errorf("queue %q: options: %w", name, err)
	}
	var rec record
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return nil, fmt.Errorf("queue %q: options: %w", name, err)
	}
	if q != nil {
		q.cfg.Store(&rec.Config)
		q.levels.Or(uint32(rec.Levels))
		q.loaded.Store(b.opts.Clock.Now().UnixNano())
		return q, nil
	}
	return b.attach(ctx, name, &rec)
}

// record is a queue's entry in the options bucket: the options and, in
// the same JSON object, the priority levels.
type record struct {
	Config
	// Levels is the bit set of priority levels that have a consumer.
	Levels uint16
}

type recordJSON struct {
	configJSON
	Levels uint16 `json:"levels"`
}

// MarshalJSON writes the options and the levels in one object (Config's
// own MarshalJSON would otherwise be promoted and drop Levels).
func (r record) MarshalJSON() ([]byte, error) {
	return json.Marshal(recordJSON{configJSON: r.Config.wire(), Levels: r.Levels})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *record) UnmarshalJSON(b []byte) error {
	var j recordJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	r.Config, r.Levels = j.config(), j.Levels
	return nil
}

// addLevel creates priority level p's consumer on first use and records it.
func (b *Broker) addLevel(ctx context.Context, q *qstate, p int) error {
	bit := uint32(1) << p
	if q.levels.Load()&bit != 0 {
		return nil
	}
	q.levelMu.Lock()
	defer q.levelMu.Unlock()
	if q.levels.Load()&bit != 0 {
		return nil
	}
	if err := b.ensureLevel(ctx, q.stream, q.n, p, q.cfg.Load()); err != nil {
		return err
	}
	for range 10 {
		e, err := b.kv.Get(ctx, q.n.queue)
		if err != nil {
			return fmt.Errorf("queue %q: levels: %w", q.n.queue, err)
		}
		var rec record
		if err := json.Unmarshal(e.Value(), &rec); err != nil {
			return fmt.Errorf("queue %q: levels: %w", q.n.queue, err)
		}
		rec.Levels |= uint16(bit)
		val, _ := json.Marshal(&rec)
		if _, err = b.kv.Update(ctx, q.n.queue, val, e.Revision()); err == nil {
			q.levels.Or(uint32(rec.Levels))
			return nil
		}
	}
	return fmt.Errorf("queue %q: levels: too many concurrent changes", q.n.queue)
}

// attach looks up the queue's stream and caches what the client needs.
func (b *Broker) attach(ctx context.Context, name string, rec *record) (*qstate, error) {
	q := &qstate{n: namesFor(name)}
	cfg := &rec.Config
	q.cfg.Store(cfg)
	q.levels.Store(uint32(rec.Levels))
	var err error
	if q.stream, err = b.js.Stream(ctx, q.n.stream); err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, notFound(name)
		}
		return nil, fmt.Errorf("queue %q: stream: %w", name, err)
	}
	q.bell = newDoorbell(b.nc, q.n.readyAll)
	q.m = b.metrics.forQueue(name)
	q.loaded.Store(b.opts.Clock.Now().UnixNano())
	b.mu.Lock()
	defer b.mu.Unlock()
	if old := b.queues[name]; old != nil {
		q.bell.close()
		old.cfg.Store(cfg)
		old.levels.Or(uint32(rec.Levels))
		return old, nil
	}
	b.queues[name] = q
	return q, nil
}

func (b *Broker) forget(name string) {
	b.mu.Lock()
	q := b.queues[name]
	delete(b.queues, name)
	b.mu.Unlock()
	if q != nil {
		q.bell.close()
	}
}

// CreateQueue creates the queue, or updates its options when it exists
// (created reports which). The dead-letter queue is created too.
func (b *Broker) CreateQueue(ctx context.Context, name string, cfg Config) (info *Info, created bool, err error) {
	if !ValidName(name) {
		return nil, false, fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	cfg.Normalize(name)
	if err := cfg.Validate(name); err != nil {
		return nil, false, err
	}
	rec := record{Config: cfg, Levels: 1}
	old, getErr := b.kv.Get(ctx, name)
	created = errors.Is(getErr, jetstream.ErrKeyNotFound)
	if getErr != nil && !created {
		return nil, false, fmt.Errorf("queue %q: %w", name, engine.Classify(getErr))
	}
	if created {
		if err := b.roomForQueue(ctx, name, &cfg); err != nil {
			return nil, false, err
		}
	}
	if cfg.DeadLetterOf == "" {
		if err := b.ensureDLQ(ctx, cfg.DeadLetterQueue, name); err != nil {
			return nil, false, err
		}
	}
	if !created {
		var prev record
		if json.Unmarshal(old.Value(), &prev) == nil {
			rec.Levels |= prev.Levels
		}
	}
	if err := b.ensureObjects(ctx, name, &rec); err != nil {
		return nil, false, err
	}
	val, _ := json.Marshal(&rec)
	if _, err := b.kv.Put(ctx, name, val); err != nil {
		return nil, false, fmt.Errorf("queue %q: store options: %w", name, err)
	}
	b.mu.Lock()
	q := b.queues[name]
	b.mu.Unlock()
	if q != nil { // keep its unflushed counters and doorbell
		q.cfg.Store(&rec.Config)
		q.levels.Or(uint32(rec.Levels))
		q.loaded.Store(b.opts.Clock.Now().UnixNano())
	} else if q, err = b.attach(ctx, name, &rec); err != nil {
		return nil, false, err
	}
	info, err = b.info(ctx, q)
	return info, created, err
}

// roomForQueue refuses a new queue (and the dead-letter queue it brings)
// past Options.MaxQueues, or while the engine's storage is full. Nodes
// creating queues at the same moment can pass the cap by those creations.
func (b *Broker) roomForQueue(ctx context.Context, name string, cfg *Config) error {
	if err := b.opts.Writable(); err != nil {
		return fmt.Errorf("queue %q: %w", name, err)
	}
	names, err := b.Names(ctx)
	if err != nil {
		return err
	}
	need := 1
	if cfg.DeadLetterOf == "" && !slices.Contains(names, cfg.DeadLetterQueue) {
		need++
	}
	if len(names)+need > b.opts.MaxQueues {
		return fmt.Errorf("%w: queue %q: %d queues exist, the limit is %d (dead-letter queues included)",
			ErrTooManyQueues, name, len(names), b.opts.MaxQueues)
	}
	return nil
}

// ensureDLQ creates the dead-letter queue of owner unless it exists.
func (b *Broker) ensureDLQ(ctx context.Context, dlq, owner string) error {
	if _, err := b.kv.Get(ctx, dlq); err == nil {
		return nil
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("queue %q: %w", dlq, err)
	}
	_, _, err := b.CreateQueue(ctx, dlq, Config{MaxSize: DeadLetterMaxSize, Overflow: OverflowReject, DeadLetterOf: owner})
	return err
}

func (b *Broker) ensureObjects(ctx context.Context, name string, rec *record) error {
	n := namesFor(name)
	s, err := b.ensureQueueStream(ctx, jetstream.StreamConfig{
		Name:        n.stream,
		Description: "Plexus queue " + name,
		Subjects:    []string{engine.SubjectPrefix + "q." + n.tok + ".>"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    b.opts.Replicas,
		Duplicates:  dedupeWindow,
		// No MaxMsgs/MaxAge: the engine would delete silently, and a full
		// stream would make a firing schedule fail. Plexus enforces maxSize
		// and ttl itself and dead-letters what it removes.
		AllowMsgSchedules: true,
	})
	if err != nil {
		return fmt.Errorf("queue %q: stream: %w", name, err)
	}
	for p := range levels {
		if rec.Levels&(1<<p) != 0 {
			if err := b.ensureLevel(ctx, s, n, p, &rec.Config); err != nil {
				return err
			}
		}
	}
	return nil
}

// ensureLevel creates or updates priority level p's pull consumer.
func (b *Broker) ensureLevel(ctx context.Context, s jetstream.Stream, n *names, p int, cfg *Config) error {
	_, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       consumerName(p),
		FilterSubject: n.ready[p],
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.VisibilityTimeout,
		MaxDeliver:    -1, // Plexus counts attempts and moves exhausted messages itself
		MaxAckPending: -1,
		MaxWaiting:    4096,
	})
	if err != nil {
		return fmt.Errorf("queue %q: consumer %d: %w", n.queue, p, err)
	}
	return nil
}

// DeleteQueue removes the queue, its messages and options. Its dead-letter
// queue is kept (it is a queue of its own).
func (b *Broker) DeleteQueue(ctx context.Context, name string) error {
	if _, err := b.state(ctx, name); err != nil {
		return err
	}
	b.forget(name)
	n := namesFor(name)
	if err := b.js.DeleteStream(ctx, n.stream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("queue %q: delete: %w", name, err)
	}
	_ = b.kv.Delete(ctx, statsKeyPrefix+name)
	if err := b.forgetLedger(ctx, n); err != nil {
		return err
	}
	if err := b.kv.Delete(ctx, name); err != nil {
		return fmt.Errorf("queue %q: delete options: %w", name, err)
	}
	return nil
}

// Names lists the existing queues, sorted.
func (b *Broker) Names(ctx context.Context) ([]string, error) {
	lister, err := b.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("queue: list: %w", err)
	}
	var out []string
	for k := range lister.Keys() {
		if ValidName(k) {
			out = append(out, k)
		}
	}
	_ = lister.Stop() // already finished once Keys is drained
	sortStrings(out)
	return out, nil
}
