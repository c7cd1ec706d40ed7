package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"sync/atomic"

	"github.com/plexushq/plexus/bench/internal/benchutil"
	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/eventstore"
)

// plexusStore is Plexus's event store, in process on the same engine,
// with its defaults (version cache, duplicate window, no tracing). It
// reads everything with Scan, the streaming read; its paged view reads the
// same store through the paged API (ReadAll, pages of 1000).
type plexusStore struct {
	eng   *engine.Engine
	s     *eventstore.Store
	name  string
	label string // the engine, when several run
	paged bool
	// events counts what was appended: the engine counts messages, and an
	// append of several events is one.
	events *atomic.Int64
}

func newPlexus(ctx context.Context, eng *engine.Engine) (*plexusStore, error) {
	s := eventstore.New(eng, eventstore.Config{})
	if err := s.Start(ctx); err != nil {
		return nil, err
	}
	return &plexusStore{eng: eng, s: s, name: "Plexus", events: new(atomic.Int64)}, nil
}

// pagedView reads p's store through the paged API; it appends nothing.
func (p *plexusStore) pagedView() store {
	v := *p
	v.name, v.paged = "Plexus, pages of 1000", true
	return &plexusPaged{&v, p}
}

// plexusPaged is the paged view of a Plexus store.
type plexusPaged struct {
	*plexusStore
	of *plexusStore
}

func (p *plexusPaged) shares() store { return p.of }

func (p *plexusStore) Name() string { return withLabel(p.name, p.label) }

// withLabel names a system after its engine (" (3-node cluster, R3)").
func withLabel(name, label string) string {
	if label == "" {
		return name
	}
	return name + " (" + label + ")"
}

func (p *plexusStore) Append(ctx context.Context, stream string, expected int64, data [][]byte) error {
	if p.paged {
		return errSkip
	}
	evs := make([]eventstore.Event, len(data))
	for i, d := range data {
		evs[i] = eventstore.Event{Type: "UserCreated", Data: d, Source: "bench"}
	}
	_, err := p.s.Append(ctx, stream, expected, evs...)
	if err == nil {
		p.events.Add(int64(len(evs)))
	}
	return err
}

func (p *plexusStore) ReadAll(ctx context.Context) (int, error) {
	if !p.paged {
		n := 0
		err := p.s.Scan(ctx, eventstore.Query{}, func(eventstore.Envelope) error {
			n++
			return nil
		})
		return n, err
	}
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
	if p.paged {
		return errSkip
	}
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

// Count is the number of events appended to the store.
func (p *plexusStore) Count(context.Context) (int, error) { return int(p.events.Load()), nil }

func (p *plexusStore) Close() {
	if !p.paged {
		_ = p.s.Stop(context.Background())
	}
}

var (
	_ store   = (*plexusStore)(nil)
	_ counter = (*plexusStore)(nil)
	_ sharer  = (*plexusPaged)(nil)
)

// singlesPhases starts a second engine whose Plexus store gets o.singles
// events appended one at a time (one engine message each, the store's
// slowest layout to read), and adds its read-all and catch-up rates to
// those phases.
func singlesPhases(ctx context.Context, ps *benchutil.Procs, o options, read, catch *phase) error {
	eng, err := engine.Start(ctx, engine.Config{DataDir: ps.Path("engine-singles"), Sync: o.sync,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	defer eng.Stop(context.Background())
	pl, err := newPlexus(ctx, eng)
	if err != nil {
		return err
	}
	defer pl.Close()
	pl.name = "Plexus, one event per append"
	log.Printf("filling %s with %d single events", pl.Name(), o.singles)
	if _, err := appendPhase(ctx, pl, "single", 8, o.singles/8, 1); err != nil {
		return err
	}
	n := 8 * (o.singles / 8)
	r, err := timed(pl.Name(), n, func() (int, error) { return pl.ReadAll(ctx) })
	if err != nil {
		return fmt.Errorf("%s read all: %w", pl.Name(), err)
	}
	log.Printf("read all %-22s %9s events/s (%s)", pl.Name(), benchutil.FmtRate(r.Rate), r.Note)
	read.res[pl.Name()] = append(read.res[pl.Name()], r)
	r, err = timed(pl.Name(), 0, func() (int, error) { return n, pl.CatchUp(ctx, "catchup", n) })
	if err != nil {
		return fmt.Errorf("%s catch-up: %w", pl.Name(), err)
	}
	log.Printf("catch-up %-22s %9s events/s (%s)", pl.Name(), benchutil.FmtRate(r.Rate), r.Note)
	catch.res[pl.Name()] = append(catch.res[pl.Name()], r)
	return nil
}
