package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/plexushq/plexus/engine"
)

// MaxSnapshotBytes bounds a snapshot's state.
const MaxSnapshotBytes = 4 << 20

// Snapshot is a stream's state as of a version.
type Snapshot struct {
	// Version of the stream the state includes.
	Version int64 `json:"version"`
	// Position of that version's event, when known (0 otherwise); readers
	// use it to start reading right after it.
	Position uint64 `json:"position,omitempty"`
	// State is the JSON state.
	State json.RawMessage `json:"state"`
	// Timestamp is when the snapshot was saved.
	Timestamp time.Time `json:"timestamp"`
}

// SaveSnapshot stores the stream's snapshot, replacing an older one. The
// version must exist in the stream; a snapshot older than the one stored
// is ignored (newer snapshots win).
func (s *Store) SaveSnapshot(ctx context.Context, stream string, snap Snapshot) error {
	if !ValidStreamName(stream) {
		return invalidf("stream %q is not a valid name", stream)
	}
	if snap.Version < 1 {
		return invalidf("snapshot version %d: want 1 or more", snap.Version)
	}
	if len(snap.State) == 0 || !json.Valid(snap.State) {
		return invalidf("snapshot state must be JSON")
	}
	if len(snap.State) > MaxSnapshotBytes {
		return invalidf("snapshot state is %d bytes, more than %d", len(snap.State), MaxSnapshotBytes)
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	last, err := s.last(ctx, stream)
	if err != nil {
		return err
	}
	if last.version == 0 {
		return fmt.Errorf("%w: %q", ErrStreamNotFound, stream)
	}
	if snap.Version > last.version {
		return invalidf("snapshot version %d is past the stream's version %d", snap.Version, last.version)
	}
	if snap.Version == last.version {
		snap.Position = last.pos
	} else if snap.Position != 0 {
		if err := s.checkPosition(ctx, stream, snap); err != nil {
			return err
		}
	}
	if err := s.eng.Writable(); err != nil {
		return fmt.Errorf("eventstore: snapshot of %q: %w", stream, err)
	}
	snap.Timestamp = time.Now().UTC()
	return s.putSnapshot(ctx, stream, snap)
}

// checkPosition makes sure a snapshot's position is its version's event.
func (s *Store) checkPosition(ctx context.Context, stream string, snap Snapshot) error {
	e, err := s.eventAt(ctx, snap.Position)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if err != nil || e.Stream != stream || e.Version != snap.Version {
		return invalidf("snapshot position %d is not version %d of %q", snap.Position, snap.Version, stream)
	}
	return nil
}

// putSnapshot stores snap unless a newer snapshot is already there.
func (s *Store) putSnapshot(ctx context.Context, stream string, snap Snapshot) error {
	b, _ := json.Marshal(snap)
	for range 3 {
		old, err := s.snapshots.Get(ctx, stream)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			_, err = s.snapshots.Create(ctx, stream, b)
		case err != nil:
			return fmt.Errorf("eventstore: snapshot of %q: %w", stream, engine.Classify(err))
		default:
			var cur Snapshot
			if json.Unmarshal(old.Value(), &cur) == nil && cur.Version > snap.Version {
				return nil
			}
			_, err = s.snapshots.Update(ctx, stream, b, old.Revision())
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) &&
			!errors.Is(err, &jetstream.APIError{ErrorCode: jetstream.JSErrCodeStreamWrongLastSequence}) {
			return fmt.Errorf("eventstore: snapshot of %q: %w", stream, engine.Classify(err))
		}
	}
	return fmt.Errorf("eventstore: snapshot of %q: concurrent writers", stream)
}

// LoadSnapshot returns the stream's snapshot; ErrNotFound when none.
func (s *Store) LoadSnapshot(ctx context.Context, stream string) (Snapshot, error) {
	if !ValidStreamName(stream) {
		return Snapshot{}, invalidf("stream %q is not a valid name", stream)
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	e, err := s.snapshots.Get(ctx, stream)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Snapshot{}, fmt.Errorf("%w: no snapshot of %q", ErrNotFound, stream)
	} else if err != nil {
		return Snapshot{}, fmt.Errorf("eventstore: snapshot of %q: %w", stream, engine.Classify(err))
	}
	var snap Snapshot
	if err := json.Unmarshal(e.Value(), &snap); err != nil {
		return Snapshot{}, fmt.Errorf("eventstore: snapshot of %q: %w", stream, err)
	}
	return snap, nil
}
