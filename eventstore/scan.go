package eventstore

import (
	"context"
	"fmt"

	"github.com/plexushq/plexus/engine"
)

// scanBuffer is how many messages a Scan lets the engine send ahead
// (within the byte bound of one pull).
const scanBuffer = 1024

// Scan calls fn with every event matching q (Limit is ignored), in global
// order, from q.FromPosition (or q.Since) up to the last event stored when
// it starts, and returns nil then; fn's error ends it and is returned.
// It reads through one engine consumer that streams the events, not page
// by page: rebuilding a read model or exporting the store runs at the
// engine's speed. Events appended while it runs may or may not be
// included; Tail continues with them.
func (s *Store) Scan(ctx context.Context, q Query, fn func(Envelope) error) error {
	return s.scan(ctx, q, tailOpts{}, fn)
}

// scan is Scan with the HTTP reader's set-up deadline.
func (s *Store) scan(ctx context.Context, q Query, o tailOpts, fn func(Envelope) error) error {
	q.OnlyNew, q.Backward = false, false
	setup := o.setup
	if setup <= 0 {
		setup = s.cfg.RequestTimeout
	}
	ictx, cancel := context.WithTimeout(ctx, setup)
	st, err := s.js.Stream(ictx, engine.StreamEvents)
	cancel()
	if err != nil {
		return fmt.Errorf("eventstore: scan: %w", engine.Classify(err))
	}
	end := st.CachedInfo().State.LastSeq
	if end == 0 {
		return nil
	}
	o.end, o.buffer = end, scanBuffer
	return s.tail(ctx, q, o, fn)
}
