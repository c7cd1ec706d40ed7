package registry

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// EventType says what happened to an instance.
type EventType string

// Event types of the change feed; the SSE stream of GET /v1/watch uses
// them as event names (after one "snapshot" event).
const (
	EventPut    EventType = "put"
	EventDelete EventType = "delete"
)

// Event is one change of one instance.
type Event struct {
	Type    EventType `json:"type"`
	Service string    `json:"service"`
	ID      string    `json:"id"`
	// Instance is the new value (put only).
	Instance *Instance `json:"instance,omitempty"`
	// Revision orders events: it grows with every change in the registry.
	Revision uint64 `json:"revision"`
}

// ErrWatchClosed is returned by Watcher.Next after the watch ended (Stop,
// or the engine connection closed).
var ErrWatchClosed = errors.New("registry: watch closed")

// ErrWatchStalled is returned by Watcher.Next when the bucket holds a
// change that the watch has not delivered StoreConfig.WatchStallAfter
// after the engine reported it: the subscription is alive but nothing
// arrives on it (the server that fed it died, its consumer is gone). Start
// a new watch.
var ErrWatchStalled = errors.New("registry: watch stalled")

// Watcher is a change feed over the registry bucket. It owns no goroutine
// of its own; the engine client delivers into a bounded buffer that Next
// drains. While Next waits it also asks the engine, every
// StoreConfig.WatchCheck, for the bucket's latest revision: reaching it
// proves the feed complete up to then (FreshAt); failing to reach it in
// time is a stall (ErrWatchStalled).
type Watcher struct {
	kw       jetstream.KeyWatcher
	cancel   context.CancelFunc
	stopOnce sync.Once
	stopErr  error

	// Freshness checks; probe nil turns them off. The fields but fresh
	// belong to the goroutine calling Next.
	probe      func(ctx context.Context) (uint64, error)
	every      time.Duration
	stallAfter time.Duration
	timer      *time.Timer
	seen       uint64    // highest revision delivered
	target     uint64    // a revision the engine had that the feed has not delivered yet (0: none)
	targetAt   time.Time // when the engine reported target
	nextProbe  time.Time
	fresh      atomic.Int64 // unix nanos: the feed had every change the engine had at this time
}

// Watch starts a change feed for service (every service when ""). It
// returns the live instances at the start (sorted by service and id) and
// a Watcher whose Next returns every later change. Stop it when done.
func (s *Store) Watch(ctx context.Context, service string) (*Watcher, []*Instance, error) {
	filter := jetstream.AllKeys
	if service != "" {
		if err := ValidateService(service); err != nil {
			return nil, nil, err
		}
		filter = service + ".*"
	}
	started := time.Now()
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	kw, err := s.kv.Watch(wctx, filter)
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("registry: watch: %w", err)
	}
	w := &Watcher{kw: kw, cancel: cancel, every: s.watchCheck, stallAfter: s.watchStall}
	if s.watchCheck > 0 {
		w.probe = func(ctx context.Context) (uint64, error) { return s.lastRevision(ctx, filter) }
		w.nextProbe = started.Add(s.watchCheck)
	}
	// The snapshot holds at least what the bucket had when the watch began.
	w.fresh.Store(started.UnixNano())
	initial, err := w.initial(ctx, s)
	if err != nil {
		_ = w.Stop()
		return nil, nil, err
	}
	return w, initial, nil
}

// initial reads the values present at the start, up to the engine's
// end-of-initial-data marker (a nil entry).
func (w *Watcher) initial(ctx context.Context, s *Store) ([]*Instance, error) {
	var list []*Instance
	now := s.now()
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("registry: watch: %w", ctx.Err())
		case e, ok := <-w.kw.Updates():
			if !ok {
				return nil, ErrWatchClosed
			}
			if e == nil {
				sortInstances(list)
				return list, nil
			}
			w.saw(e.Revision())
			if e.Operation() != jetstream.KeyValuePut {
				continue
			}
			inst, err := decode(e)
			if err != nil || !inst.ExpiresAt.After(now) {
				continue
			}
			list = append(list, inst)
		}
	}
}

// Next waits for the next change. Values that do not decode are skipped.
// It returns ErrWatchClosed once the watch has ended, ErrWatchStalled when
// the feed fell behind the bucket, or ctx's error.
func (w *Watcher) Next(ctx context.Context) (Event, error) {
	for {
		var wake <-chan time.Time
		if w.probe != nil {
			wake = w.wakeAt()
		}
		select {
		case <-ctx.Done():
			return Event{}, ctx.Err()
		case e, ok := <-w.kw.Updates():
			if !ok {
				return Event{}, ErrWatchClosed
			}
			if e != nil {
				w.saw(e.Revision())
			}
			if ev, ok := toEvent(e); ok {
				return ev, nil
			}
		case <-wake:
			if err := w.check(ctx); err != nil {
				return Event{}, err
			}
		}
	}
}

// FreshAt is when the feed last provably had every change the bucket had:
// the start of the watch, then the time of the latest revision check the
// feed caught up with. Safe to call from any goroutine.
func (w *Watcher) FreshAt() time.Time { return time.Unix(0, w.fresh.Load()) }

// wakeAt arms the watcher's timer for the next revision check, or for the
// moment a pending revision becomes a stall, whichever comes first.
func (w *Watcher) wakeAt() <-chan time.Time {
	at := w.nextProbe
	if w.target != 0 {
		at = earlier(at, w.targetAt.Add(w.stallAfter))
	}
	d := max(time.Until(at), 0)
	if w.timer == nil {
		w.timer = time.NewTimer(d)
	} else {
		w.timer.Reset(d)
	}
	return w.timer.C
}

// saw records a delivered revision.
func (w *Watcher) saw(rev uint64) {
	if rev <= w.seen {
		return
	}
	w.seen = rev
	if w.target != 0 && w.seen >= w.target {
		w.fresh.Store(w.targetAt.UnixNano())
		w.target = 0
	}
}

// check declares a stall, or asks the engine for the bucket's latest
// revision when it is time. An engine that does not answer proves
// nothing either way: FreshAt stays where it is and the view ages.
func (w *Watcher) check(ctx context.Context) error {
	now := time.Now()
	if w.target != 0 && now.Sub(w.targetAt) >= w.stallAfter {
		return fmt.Errorf("%w: the bucket had revision %d %s ago; the watch is at %d",
			ErrWatchStalled, w.target, now.Sub(w.targetAt).Round(time.Millisecond), w.seen)
	}
	if now.Before(w.nextProbe) {
		return nil
	}
	w.nextProbe = now.Add(w.every)
	pctx, cancel := context.WithTimeout(ctx, w.every)
	rev, err := w.probe(pctx)
	cancel()
	switch {
	case err != nil:
	case rev <= w.seen:
		w.fresh.Store(now.UnixNano())
	case w.target == 0:
		// Keep an older pending target: its clock decides the stall.
		w.target, w.targetAt = rev, now
	}
	return nil
}

// updates is the raw feed for select loops (see toEvent); it is closed
// when the watch ends.
func (w *Watcher) updates() <-chan jetstream.KeyValueEntry { return w.kw.Updates() }

func toEvent(e jetstream.KeyValueEntry) (Event, bool) {
	if e == nil {
		return Event{}, false
	}
	service, id, ok := splitKey(e.Key())
	if !ok {
		return Event{}, false
	}
	ev := Event{Type: EventDelete, Service: service, ID: id, Revision: e.Revision()}
	if e.Operation() == jetstream.KeyValuePut {
		inst, err := decode(e)
		if err != nil {
			return Event{}, false
		}
		ev.Type, ev.Instance = EventPut, inst
	}
	return ev, true
}

// Stop ends the watch. It is safe to call more than once.
func (w *Watcher) Stop() error {
	w.stopOnce.Do(func() {
		w.cancel()
		err := w.kw.Stop()
		if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) && !errors.Is(err, nats.ErrBadSubscription) &&
			!errors.Is(err, nats.ErrConnectionClosed) {
			w.stopErr = err
		}
	})
	return w.stopErr
}
