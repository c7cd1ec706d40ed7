package eventstore

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/plexushq/plexus/engine"
)

// Tail calls fn with every event matching q (Limit is ignored), first the
// stored ones from q.FromPosition (or q.Since), then new ones as they are
// appended, in global order, until ctx ends (nil) or fn fails (its error).
// It keeps no checkpoint: it is for live views, SSE and rebuilding
// in-memory read models; use Subscribe for durable work.
func (s *Store) Tail(ctx context.Context, q Query, fn func(Envelope) error) error {
	return s.tail(ctx, q, nil, fn)
}

// tail is Tail with a ready callback, called once the engine delivers to
// it (so an OnlyNew reader misses nothing appended after ready).
func (s *Store) tail(ctx context.Context, q Query, ready func(), fn func(Envelope) error) error {
	q.Limit = 0
	if err := q.Validate(); err != nil {
		return err
	}
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: filterSubjects(q.Category, q.Types),
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    max(q.FromPosition, 1),
	}
	if q.OnlyNew {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverNewPolicy, 0
	} else if !q.Since.IsZero() && q.FromPosition <= 1 {
		since := q.Since
		cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, 0, &since
	}
	cons, err := s.js.OrderedConsumer(ctx, engine.StreamEvents, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("eventstore: tail: %w", err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("eventstore: tail: %w", err)
	}
	if ready != nil {
		ready()
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
		case <-done:
		}
		it.Stop()
	}()
	defer func() { close(done); wg.Wait() }()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return fmt.Errorf("eventstore: tail: %w", err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("eventstore: tail: %w", err)
		}
		if !q.Since.IsZero() && md.Timestamp.Before(q.Since) {
			continue
		}
		env, err := envelope(msg.Subject(), md.Sequence.Stream, md.Timestamp, msg.Headers(), msg.Data())
		if err != nil {
			return err
		}
		if err := fn(env); err != nil {
			return err
		}
	}
}
