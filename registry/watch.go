package registry

import (
	"context"
	"errors"
	"fmt"
	"sync"

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

// Watcher is a change feed over the registry bucket. It owns no goroutine
// of its own; the engine client delivers into a bounded buffer that Next
// drains.
type Watcher struct {
	kw       jetstream.KeyWatcher
	cancel   context.CancelFunc
	stopOnce sync.Once
	stopErr  error
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
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	kw, err := s.kv.Watch(wctx, filter)
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("registry: watch: %w", err)
	}
	w := &Watcher{kw: kw, cancel: cancel}
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
// It returns ErrWatchClosed once the watch has ended, or ctx's error.
func (w *Watcher) Next(ctx context.Context) (Event, error) {
	for {
		select {
		case <-ctx.Done():
			return Event{}, ctx.Err()
		case e, ok := <-w.kw.Updates():
			if !ok {
				return Event{}, ErrWatchClosed
			}
			if ev, ok := toEvent(e); ok {
				return ev, nil
			}
		}
	}
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
