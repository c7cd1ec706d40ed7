package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// ApplyFunc folds one event into an aggregate's state. It must be a pure
// function of its arguments: Load replays it over stored events and Raise
// runs it on new ones.
type ApplyFunc[S any] func(state S, e Envelope) (S, error)

// RepositoryConfig tunes a Repository. The zero value works.
type RepositoryConfig struct {
	// SnapshotEvery saves a snapshot whenever a save crosses a multiple of
	// this many events. Default 100 (the seed's; docs/events.md); negative: never.
	SnapshotEvery int
	// Source is the source of the events the repository saves. Default
	// DefaultSource.
	Source string
}

// Repository loads and saves aggregates whose state S is rebuilt from
// their events: load = snapshot + later events; save appends the new
// events with the loaded version as the expected one.
type Repository[S any] struct {
	store *Store
	apply ApplyFunc[S]
	cfg   RepositoryConfig
}

// NewRepository returns a repository for one kind of aggregate.
func NewRepository[S any](store *Store, apply ApplyFunc[S], cfg RepositoryConfig) *Repository[S] {
	if cfg.SnapshotEvery == 0 {
		cfg.SnapshotEvery = 100
	}
	return &Repository[S]{store: store, apply: apply, cfg: cfg}
}

// Aggregate is one loaded aggregate: its state, its version and the events
// raised since it was loaded.
type Aggregate[S any] struct {
	// ID is the aggregate's stream.
	ID string
	// State after every event, the raised ones included.
	State S
	// Version counts every event, the raised ones included.
	Version int64

	repo     *Repository[S]
	saved    int64  // version in the store
	position uint64 // position of the saved version's event
	pending  []Event
}

// Exists reports whether the aggregate has events, saved or raised.
func (a *Aggregate[S]) Exists() bool { return a.Version > 0 }

// SavedVersion is the version the store has; Save expects it.
func (a *Aggregate[S]) SavedVersion() int64 { return a.saved }

// Pending returns the events raised and not yet saved.
func (a *Aggregate[S]) Pending() []Event { return append([]Event(nil), a.pending...) }

// Raise records a new event: it is applied to the state at once and
// stored by the next Save. When apply refuses it, nothing changes.
func (a *Aggregate[S]) Raise(typ string, data any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("%w: event %q of %q: %v", ErrInvalid, typ, a.ID, err)
	}
	e := Event{Type: typ, Data: b, Source: a.repo.cfg.Source}
	if err := e.Validate(); err != nil {
		return err
	}
	env := Envelope{Type: typ, Stream: a.ID, Version: a.Version + 1, Data: b, Metadata: json.RawMessage("{}"), Source: e.Source}
	state, err := a.repo.apply(a.State, env)
	if err != nil {
		return err
	}
	a.State, a.Version = state, a.Version+1
	a.pending = append(a.pending, e)
	return nil
}

// New returns an aggregate without events.
func (r *Repository[S]) New(id string) *Aggregate[S] {
	return &Aggregate[S]{ID: id, repo: r}
}

// Load rebuilds the aggregate: its snapshot (when there is a usable one)
// and the events after it. An id without events gives an empty aggregate.
func (r *Repository[S]) Load(ctx context.Context, id string) (*Aggregate[S], error) {
	if !ValidStreamName(id) {
		return nil, invalidf("aggregate id %q is not a valid stream name", id)
	}
	a := r.New(id)
	if snap, err := r.store.LoadSnapshot(ctx, id); err == nil {
		var st S
		if json.Unmarshal(snap.State, &st) == nil {
			a.State, a.Version, a.position = st, snap.Version, snap.Position
		}
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	for {
		var page []Envelope
		var err error
		if a.position > 0 {
			page, err = r.store.ReadStreamAfter(ctx, id, a.Version+1, a.position, MaxReadLimit)
		} else {
			page, err = r.store.ReadStream(ctx, id, a.Version+1, MaxReadLimit)
		}
		if errors.Is(err, ErrStreamNotFound) {
			break
		} else if err != nil {
			return nil, err
		}
		for _, e := range page {
			if e.Version != a.Version+1 {
				return nil, fmt.Errorf("eventstore: aggregate %q: version %d follows %d", id, e.Version, a.Version)
			}
			if a.State, err = r.apply(a.State, e); err != nil {
				return nil, fmt.Errorf("eventstore: aggregate %q: applying version %d: %w", id, e.Version, err)
			}
			a.Version, a.position = e.Version, e.Position
		}
		if len(page) < MaxReadLimit {
			break
		}
	}
	a.saved = a.Version
	return a, nil
}

// Save appends the raised events atomically, expecting the version the
// aggregate was loaded at; a concurrent writer makes it fail with a
// *ConflictError (load again and retry the command). It snapshots every
// SnapshotEvery events.
func (r *Repository[S]) Save(ctx context.Context, a *Aggregate[S]) (AppendResult, error) {
	if len(a.pending) == 0 {
		return AppendResult{Version: a.saved, Position: a.position}, nil
	}
	res, err := r.store.Append(ctx, a.ID, a.saved, a.pending...)
	if err != nil {
		return res, err
	}
	before := a.saved
	a.saved, a.position, a.pending = res.Version, res.Position, nil
	if n := int64(r.cfg.SnapshotEvery); n > 0 && before/n != res.Version/n {
		if err := r.snapshot(ctx, a); err != nil {
			r.store.log.Warn("events: snapshot failed; loads replay more events", "stream", a.ID, "err", err)
		}
	}
	return res, nil
}

func (r *Repository[S]) snapshot(ctx context.Context, a *Aggregate[S]) error {
	b, err := json.Marshal(a.State)
	if err != nil {
		return err
	}
	return r.store.SaveSnapshot(ctx, a.ID, Snapshot{Version: a.saved, Position: a.position, State: b})
}
