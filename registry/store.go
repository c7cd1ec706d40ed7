package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/plexushq/plexus/clock"
	"github.com/plexushq/plexus/engine"
)

// DefaultMarkerTTL is how long the engine keeps the marker of a removed
// instance (deregistered or expired). Watchers see the removal as it
// happens; the marker only has to outlive short disconnections of
// watchers that resume where they stopped.
const DefaultMarkerTTL = 10 * time.Minute

// casAttempts bounds the compare-and-set retries of one update.
const casAttempts = 16

// StoreConfig configures a Store. The zero value works.
type StoreConfig struct {
	// MarkerTTL is how long removal markers stay in the bucket. Default
	// DefaultMarkerTTL; at least one second.
	MarkerTTL time.Duration
	// Clock tells the time of registrations, heartbeats and leases.
	// Default the wall clock.
	Clock clock.Clock
	// Logger for store events. Default slog.Default().
	Logger *slog.Logger
	// WatchCheck is how often a waiting watch asks the engine for the
	// bucket's latest revision, to prove itself current or find itself
	// stalled (see Watcher). Default 1s; negative turns the checks off.
	WatchCheck time.Duration
	// WatchStallAfter is how long a watch may stay behind a revision the
	// engine reported before Next gives ErrWatchStalled. Default 2s.
	WatchStallAfter time.Duration
}

func (c *StoreConfig) defaults() {
	if c.MarkerTTL == 0 {
		c.MarkerTTL = DefaultMarkerTTL
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.WatchCheck == 0 {
		c.WatchCheck = time.Second
	}
	if c.WatchStallAfter <= 0 {
		c.WatchStallAfter = 2 * time.Second
	}
}

// Store keeps instances in the engine's key-value bucket
// engine.BucketRegistry under the key "<service>.<instance-id>", one JSON
// value each. Every value carries a per-key TTL (the lease) so an instance
// that stops heartbeating disappears by itself, and every update is a
// compare-and-set on the key's revision so concurrent writers (heartbeats,
// checkers on several nodes, status changes) never overwrite each other.
type Store struct {
	kv         jetstream.KeyValue
	js         jetstream.JetStream
	stream     jetstream.Stream // the bucket's stream, for revision checks
	subjPre    string
	markerTTL  time.Duration
	now        func() time.Time
	log        *slog.Logger
	watchCheck time.Duration
	watchStall time.Duration
	writable   func() error // the engine's storage gate (engine.Writable)
}

// OpenStore creates or updates the registry bucket on eng and returns a
// store on it.
func OpenStore(ctx context.Context, eng *engine.Engine, cfg StoreConfig) (*Store, error) {
	cfg.defaults()
	if cfg.MarkerTTL < time.Second {
		return nil, fmt.Errorf("registry: marker TTL %s: at least 1s", cfg.MarkerTTL)
	}
	kv, err := eng.EnsureKV(ctx, jetstream.KeyValueConfig{
		Bucket:         engine.BucketRegistry,
		Description:    "Plexus registry: <service>.<instance-id> -> instance JSON, per-key TTL = lease",
		History:        1,
		MaxValueSize:   MaxBodyBytes,
		LimitMarkerTTL: cfg.MarkerTTL,
	})
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	stream, err := eng.JetStream().Stream(ctx, "KV_"+engine.BucketRegistry)
	if err != nil {
		return nil, fmt.Errorf("registry: bucket stream: %w", err)
	}
	return &Store{
		kv:         kv,
		js:         eng.JetStream(),
		stream:     stream,
		subjPre:    "$KV." + engine.BucketRegistry + ".",
		markerTTL:  cfg.MarkerTTL,
		now:        clock.Or(cfg.Clock).Now,
		log:        cfg.Logger,
		watchCheck: cfg.WatchCheck,
		watchStall: cfg.WatchStallAfter,
		writable:   eng.Writable,
	}, nil
}

// lastRevision is the revision of the newest entry (value or removal
// marker) under the key filter, 0 when there is none. Any replica of the
// bucket may answer (a direct get), so it works while the bucket elects a
// leader; a replica is never ahead of the leader.
func (s *Store) lastRevision(ctx context.Context, filter string) (uint64, error) {
	m, err := s.stream.GetLastMsgForSubject(ctx, s.subjPre+filter)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return m.Sequence, nil
}

// key is the bucket key of an instance. Instance ids have no dots, so the
// key splits at its last dot.
func key(service, id string) string { return service + "." + id }

func splitKey(k string) (service, id string, ok bool) {
	i := strings.LastIndexByte(k, '.')
	if i <= 0 || i == len(k)-1 {
		return "", "", false
	}
	return k[:i], k[i+1:], true
}

// leaseTTL is the per-key TTL that makes the engine drop the value at (or
// up to one second after) inst.ExpiresAt: the engine counts whole seconds,
// so the remainder is rounded up, never down.
func leaseTTL(inst *Instance, now time.Time) (time.Duration, error) {
	left := inst.ExpiresAt.Sub(now)
	if left <= 0 {
		return 0, fmt.Errorf("%w: instance %q of service %q", ErrExpired, inst.ID, inst.Service)
	}
	return ((left + time.Second - 1) / time.Second) * time.Second, nil
}

// decode reads a stored value; the revision comes from the entry.
func decode(e jetstream.KeyValueEntry) (*Instance, error) {
	var inst Instance
	if err := json.Unmarshal(e.Value(), &inst); err != nil {
		return nil, fmt.Errorf("registry: key %q: corrupt value: %w", e.Key(), err)
	}
	service, id, ok := splitKey(e.Key())
	if !ok || inst.Service != service || inst.ID != id {
		return nil, fmt.Errorf("registry: key %q: value names %q/%q", e.Key(), inst.Service, inst.ID)
	}
	inst.Revision = e.Revision()
	return &inst, nil
}

func encode(inst *Instance) ([]byte, error) {
	c := *inst
	c.Revision = 0
	return json.Marshal(&c)
}

// load returns the current value of a key and its revision. A missing key
// gives (nil, 0, nil); a value whose lease has ended but that the engine
// has not removed yet gives (nil, rev, nil) so a writer can replace it.
func (s *Store) load(ctx context.Context, service, id string) (*Instance, uint64, error) {
	e, err := s.kv.Get(ctx, key(service, id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("registry: get %s/%s: %w", service, id, err)
	}
	inst, err := decode(e)
	if err != nil {
		// A corrupt value is replaced by the next registration.
		s.log.Warn("registry: ignoring corrupt value", "key", e.Key(), "err", err)
		return nil, e.Revision(), nil
	}
	if !inst.ExpiresAt.After(s.now()) {
		return nil, e.Revision(), nil
	}
	return inst, e.Revision(), nil
}

// write stores inst at revision rev (compare-and-set) with the lease as
// its TTL and returns the new revision.
func (s *Store) write(ctx context.Context, inst *Instance, rev uint64) (uint64, error) {
	ttl, err := leaseTTL(inst, s.now())
	if err != nil {
		return 0, err
	}
	b, err := encode(inst)
	if err != nil {
		return 0, err
	}
	k := key(inst.Service, inst.ID)
	if rev == 0 {
		// Create also handles a removal marker left on the key.
		return s.kv.Create(ctx, k, b, jetstream.KeyTTL(ttl))
	}
	msg := &nats.Msg{Subject: s.subjPre + k, Data: b, Header: nats.Header{}}
	ack, err := s.js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(rev), jetstream.WithMsgTTL(ttl))
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// isCASConflict reports a lost compare-and-set race.
func isCASConflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// Register validates reg and stores the instance, replacing one with the
// same id. It reports whether the instance is new. A (re-)registration
// starts the instance healthy with fresh check counters (docs/registry.md);
// it keeps registeredAt and the last check of the instance it replaces,
// and the checker that checks it. An invalid registration changes
// nothing. While the engine's storage is full it is refused with
// engine.ErrStorageFull (heartbeats, status changes and deregistrations,
// which replace or remove a key, go on in the engine's reserve).
func (s *Store) Register(ctx context.Context, service, id string, reg *Registration) (*Instance, bool, error) {
	inst, err := reg.Normalize(service, id)
	if err != nil {
		return nil, false, err
	}
	if err := s.writable(); err != nil {
		return nil, false, fmt.Errorf("registry: register %s/%s: %w", service, id, err)
	}
	for range casAttempts {
		cur, rev, err := s.load(ctx, service, id)
		if err != nil {
			return nil, false, err
		}
		now := s.now().UTC()
		inst.Status, inst.CheckPasses, inst.CheckFailures = StatusHealthy, 0, 0
		inst.RegisteredAt, inst.LastHeartbeat = now, now
		inst.ExpiresAt = now.Add(inst.TTL)
		inst.LastCheck, inst.CheckOutput, inst.Checker, inst.CheckerSince = nil, "", "", nil
		if cur != nil {
			inst.RegisteredAt, inst.LastCheck, inst.CheckOutput = cur.RegisteredAt, cur.LastCheck, cur.CheckOutput
			inst.Checker, inst.CheckerSince = cur.Checker, cur.CheckerSince
		}
		nrev, err := s.write(ctx, inst, rev)
		if isCASConflict(err) {
			continue
		}
		if err != nil {
			return nil, false, fmt.Errorf("registry: register %s/%s: %w", service, id, err)
		}
		inst.Revision = nrev
		return inst, cur == nil, nil
	}
	return nil, false, fmt.Errorf("%w: register %s/%s", ErrConflict, service, id)
}

// update applies fn to the current instance and stores the result by
// compare-and-set, retrying when another writer got there first. fn gets
// a copy it may change; returning false skips the write.
func (s *Store) update(ctx context.Context, service, id string, fn func(inst *Instance) (bool, error)) (*Instance, error) {
	if err := ValidateService(service); err != nil {
		return nil, err
	}
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	for range casAttempts {
		cur, _, err := s.load(ctx, service, id)
		if err != nil {
			return nil, err
		}
		if cur == nil {
			return nil, notFound(service, id)
		}
		next := *cur
		write, err := fn(&next)
		if err != nil || !write {
			return cur, err
		}
		nrev, err := s.write(ctx, &next, cur.Revision)
		if isCASConflict(err) {
			continue
		}
		if errors.Is(err, ErrExpired) {
			return nil, notFound(service, id)
		}
		if err != nil {
			return nil, fmt.Errorf("registry: update %s/%s: %w", service, id, err)
		}
		next.Revision = nrev
		return &next, nil
	}
	return nil, fmt.Errorf("%w: update %s/%s", ErrConflict, service, id)
}

// Deregister removes an instance. Unknown (or expired) instances give
// ErrNotFound. The removal leaves a marker that expires after MarkerTTL,
// so deregistered ids do not pile up in the bucket.
func (s *Store) Deregister(ctx context.Context, service, id string) error {
	if err := ValidateService(service); err != nil {
		return err
	}
	if err := ValidateID(id); err != nil {
		return err
	}
	for range casAttempts {
		cur, rev, err := s.load(ctx, service, id)
		if err != nil {
			return err
		}
		if rev == 0 {
			return notFound(service, id)
		}
		err = s.kv.Purge(ctx, key(service, id), jetstream.LastRevision(rev), jetstream.PurgeTTL(s.markerTTL))
		if isCASConflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("registry: deregister %s/%s: %w", service, id, err)
		}
		if cur == nil {
			return notFound(service, id) // it had expired already
		}
		return nil
	}
	return fmt.Errorf("%w: deregister %s/%s", ErrConflict, service, id)
}

// Get returns one instance; ErrNotFound when it is unknown or expired.
func (s *Store) Get(ctx context.Context, service, id string) (*Instance, error) {
	if err := ValidateService(service); err != nil {
		return nil, err
	}
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	cur, _, err := s.load(ctx, service, id)
	if err != nil {
		return nil, err
	}
	if cur == nil {
		return nil, notFound(service, id)
	}
	return cur, nil
}

// List returns the live instances of service, or of every service when
// service is "", sorted by service then id.
func (s *Store) List(ctx context.Context, service string) ([]*Instance, error) {
	if service != "" {
		if err := ValidateService(service); err != nil {
			return nil, err
		}
	}
	w, initial, err := s.Watch(ctx, service)
	if err != nil {
		return nil, err
	}
	_ = w.Stop()
	return initial, nil
}

func sortInstances(list []*Instance) {
	slices.SortFunc(list, func(a, b *Instance) int {
		if c := strings.Compare(a.Service, b.Service); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}
