package main

import (
	"context"
	"sync/atomic"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/eventstore"
)

// plexusStore is Plexus's event store, in process on the same engine,
// with its defaults (version cache, duplicate window, no tracing).
type plexusStore struct {
	eng   *engine.Engine
	s     *eventstore.Store
	label string // the engine, when several run
}

func newPlexus(ctx context.Context, eng *engine.Engine) (*plexusStore, error) {
	s := eventstore.New(eng, eventstore.Config{})
	if err := s.Start(ctx); err != nil {
		return nil, err
	}
	return &plexusStore{eng: eng, s: s}, nil
}

func (p *plexusStore) Name() string { return withLabel("Plexus", p.label) }

// withLabel names a system after its engine (" (3-node cluster, R3)").
func withLabel(name, label string) string {
	if label == "" {
		return name
	}
	return name + " (" + label + ")"
}

func (p *plexusStore) Append(ctx context.Context, stream string, expected int64, data [][]byte) error {
	evs := make([]eventstore.Event, len(data))
	for i, d := range data {
		evs[i] = eventstore.Event{Type: "UserCreated", Data: d, Source: "bench"}
	}
	_, err := p.s.Append(ctx, stream, expected, evs...)
	return err
}

func (p *plexusStore) ReadAll(ctx context.Context) (int, error) {
	n := 0
	pos := uint64(1)
	for {
		page, err := p.s.ReadAll(ctx, eventstore.Query{FromPosition: pos, Limit: eventstore.MaxReadLimit})
		if err != nil {
			return n, err
		}
		if len(page.Events) == 0 {
			return n, nil
		}
		n += len(page.Events)
		pos = page.NextPosition
	}
}

func (p *plexusStore) CatchUp(ctx context.Context, group string, want int) error {
	var n atomic.Int64
	done := make(chan struct{})
	sub, err := p.s.Subscribe(ctx, group, func(ctx context.Context, e eventstore.Envelope) error {
		if n.Add(1) == int64(want) {
			close(done)
		}
		return nil
	}, eventstore.SubscribeOptions{})
	if err != nil {
		return err
	}
	defer sub.Stop(context.Background())
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Count is the number of events in the store's stream.
func (p *plexusStore) Count(ctx context.Context) (int, error) {
	st, err := p.eng.JetStream().Stream(ctx, engine.StreamEvents)
	if err != nil {
		return 0, err
	}
	return int(st.CachedInfo().State.Msgs), nil
}

func (p *plexusStore) Close() { _ = p.s.Stop(context.Background()) }

var (
	_ store   = (*plexusStore)(nil)
	_ counter = (*plexusStore)(nil)
)
