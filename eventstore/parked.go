package eventstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// States of a parked event.
const (
	// ParkedWaiting: the group gave up on the event and moved on.
	ParkedWaiting = "parked"
	// ParkedRetrying: an operator asked for another run; the group's
	// running subscription picks it up.
	ParkedRetrying = "retry"
)

// MaxParkedList bounds one listing of parked events.
const MaxParkedList = 1000

// ParkedEvent is an event a subscriber group's handler kept failing on.
// The event itself stays in the store; this records the group's failure.
type ParkedEvent struct {
	Group     string    `json:"group"`
	Position  uint64    `json:"position"`
	Stream    string    `json:"stream"`
	Type      string    `json:"type"`
	ID        string    `json:"id"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"lastError"`
	ParkedAt  time.Time `json:"parkedAt"`
	State     string    `json:"state"`
}

func parkedKey(group string, pos uint64) string { return group + "." + strconv.FormatUint(pos, 10) }

func (sub *Subscription) park(env Envelope, attempts int, cause error) error {
	rec := ParkedEvent{Group: sub.group, Position: env.Position, Stream: env.Stream, Type: env.Type, ID: env.ID,
		Attempts: attempts, LastError: truncate(cause.Error(), 1024), ParkedAt: time.Now().UTC(), State: ParkedWaiting}
	b, _ := json.Marshal(rec)
	ctx, cancel := context.WithTimeout(context.Background(), sub.store.cfg.RequestTimeout)
	defer cancel()
	if _, err := sub.store.parked.Put(ctx, parkedKey(sub.group, env.Position), b); err != nil {
		return fmt.Errorf("eventstore: park event %d of group %q: %w", env.Position, sub.group, err)
	}
	sub.store.log.Warn("events: event parked", "group", sub.group, "position", env.Position,
		"type", env.Type, "stream", env.Stream, "attempts", attempts, "err", cause)
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// watchParked runs the handler again on the group's parked events an
// operator asked to retry, including requests made while no subscriber ran.
func (sub *Subscription) watchParked() {
	defer sub.wg.Done()
	w, err := sub.store.parked.Watch(sub.ctx, sub.group+".*")
	if err != nil {
		if sub.ctx.Err() == nil {
			sub.store.log.Error("events: cannot watch parked events", "group", sub.group, "err", err)
		}
		return
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-sub.ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			var rec ParkedEvent
			if json.Unmarshal(e.Value(), &rec) != nil || rec.State != ParkedRetrying {
				continue
			}
			sub.retryParked(rec, e.Revision())
		}
	}
}

func (sub *Subscription) retryParked(rec ParkedEvent, rev uint64) {
	ctx, cancel := context.WithTimeout(sub.ctx, sub.store.cfg.RequestTimeout)
	defer cancel()
	key := parkedKey(sub.group, rec.Position)
	e, err := sub.store.eventAt(ctx, rec.Position)
	if err != nil {
		sub.store.log.Error("events: parked event cannot be read", "group", sub.group, "position", rec.Position, "err", err)
		return
	}
	err = sub.call(&e)
	if sub.ctx.Err() != nil {
		return
	}
	if err == nil {
		sub.store.metrics.handledOne(sub.group, "ok")
		if derr := sub.store.parked.Delete(ctx, key, jetstream.LastRevision(rev)); derr != nil {
			sub.store.log.Warn("events: retried parked event; could not remove it", "group", sub.group, "position", rec.Position, "err", derr)
		}
		return
	}
	rec.State, rec.Attempts, rec.LastError = ParkedWaiting, rec.Attempts+1, truncate(err.Error(), 1024)
	b, _ := json.Marshal(rec)
	if _, uerr := sub.store.parked.Update(ctx, key, b, rev); uerr != nil {
		sub.store.log.Warn("events: parked event retry failed; could not record it", "group", sub.group, "position", rec.Position, "err", uerr)
	}
}

// Parked lists a group's parked events, oldest first, at most limit
// (MaxParkedList when 0).
func (s *Store) Parked(ctx context.Context, group string, limit int) ([]ParkedEvent, error) {
	if !ValidGroup(group) {
		return nil, invalidf("group %q is not a valid group name", group)
	}
	if limit <= 0 || limit > MaxParkedList {
		limit = MaxParkedList
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	lister, err := s.parked.ListKeysFiltered(ctx, group+".*")
	if err != nil {
		return nil, fmt.Errorf("eventstore: parked of %q: %w", group, err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	out := make([]ParkedEvent, 0, min(len(keys), limit))
	for _, k := range keys {
		e, err := s.parked.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("eventstore: parked %s: %w", k, err)
		}
		var rec ParkedEvent
		if json.Unmarshal(e.Value(), &rec) == nil {
			out = append(out, rec)
		}
	}
	slices.SortFunc(out, func(a, b ParkedEvent) int { return cmp.Compare(a.Position, b.Position) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// RetryParked asks the group's running subscription to run its handler on
// the parked event again. On success the event leaves the parked list.
func (s *Store) RetryParked(ctx context.Context, group string, position uint64) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	rec, rev, err := s.parkedOne(ctx, group, position)
	if err != nil {
		return err
	}
	rec.State = ParkedRetrying
	b, _ := json.Marshal(rec)
	if _, err := s.parked.Update(ctx, parkedKey(group, position), b, rev); err != nil {
		return fmt.Errorf("eventstore: retry parked %d of %q: %w", position, group, err)
	}
	return nil
}

// SkipParked drops a parked event for good: the group never handles it.
func (s *Store) SkipParked(ctx context.Context, group string, position uint64) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if _, _, err := s.parkedOne(ctx, group, position); err != nil {
		return err
	}
	if err := s.parked.Delete(ctx, parkedKey(group, position)); err != nil {
		return fmt.Errorf("eventstore: skip parked %d of %q: %w", position, group, err)
	}
	return nil
}

func (s *Store) parkedOne(ctx context.Context, group string, position uint64) (ParkedEvent, uint64, error) {
	if !ValidGroup(group) {
		return ParkedEvent{}, 0, invalidf("group %q is not a valid group name", group)
	}
	e, err := s.parked.Get(ctx, parkedKey(group, position))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return ParkedEvent{}, 0, fmt.Errorf("%w: no parked event %d in group %q", ErrNotFound, position, group)
	} else if err != nil {
		return ParkedEvent{}, 0, fmt.Errorf("eventstore: parked %d of %q: %w", position, group, err)
	}
	var rec ParkedEvent
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return ParkedEvent{}, 0, fmt.Errorf("eventstore: parked %d of %q: %w", position, group, err)
	}
	return rec, e.Revision(), nil
}
