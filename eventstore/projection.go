package eventstore

import (
	"context"
	"fmt"
	"sync"
)

// ProjectionOptions select the events a projection reads.
type ProjectionOptions struct {
	// Types and Category filter the events (all when empty).
	Types    []string
	Category string
	// Group makes the projection a durable subscriber group: it continues
	// from its checkpoint after a restart, so the model must be durable
	// too (apply writes it to a database). Without a group the model lives
	// in memory and is rebuilt from the first event at every Start.
	Group string
	// Subscribe tunes retries and parking of a durable projection.
	Subscribe SubscribeOptions
}

// Projection builds a read model M from events: apply is called with each
// matching event in global order.
type Projection[M any] struct {
	store *Store
	apply func(m *M, e Envelope) error
	opts  ProjectionOptions

	mu      sync.RWMutex
	model   M
	pos     uint64
	changed chan struct{} // closed and replaced whenever pos moves

	sub    *Subscription
	cancel context.CancelFunc
	wg     sync.WaitGroup
	err    error
}

// NewProjection prepares a projection over model; Start runs it.
func NewProjection[M any](store *Store, model M, apply func(m *M, e Envelope) error, opts ProjectionOptions) *Projection[M] {
	return &Projection[M]{store: store, apply: apply, opts: opts, model: model, changed: make(chan struct{})}
}

// Start begins reading events; it returns once the projection runs.
func (p *Projection[M]) Start(ctx context.Context) error {
	if p.opts.Group != "" {
		o := p.opts.Subscribe
		o.Types, o.Category = p.opts.Types, p.opts.Category
		sub, err := p.store.Subscribe(ctx, p.opts.Group, func(_ context.Context, e Envelope) error {
			return p.step(e)
		}, o)
		if err != nil {
			return err
		}
		p.sub = sub
		return nil
	}
	q := Query{Types: p.opts.Types, Category: p.opts.Category}
	if err := q.Validate(); err != nil {
		return err
	}
	tctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		err := p.store.Tail(tctx, q, p.step)
		if err != nil {
			p.store.log.Error("events: projection stopped", "err", err)
			p.mu.Lock()
			p.err = err
			close(p.changed) // wake WaitFor callers so they see the error
			p.changed = make(chan struct{})
			p.mu.Unlock()
		}
	}()
	return nil
}

// step applies one event under the write lock.
func (p *Projection[M]) step(e Envelope) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.apply(&p.model, e); err != nil {
		return fmt.Errorf("projection: event %d (%s): %w", e.Position, e.Type, err)
	}
	p.pos = e.Position
	close(p.changed)
	p.changed = make(chan struct{})
	return nil
}

// Stop ends the projection, bounded by ctx.
func (p *Projection[M]) Stop(ctx context.Context) error {
	if p.sub != nil {
		return p.sub.Stop(ctx)
	}
	if p.cancel != nil {
		p.cancel()
	}
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Read calls fn with the model under a read lock; fn must not keep it.
func (p *Projection[M]) Read(fn func(m *M)) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	fn(&p.model)
}

// Position is the position of the last event applied.
func (p *Projection[M]) Position() uint64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.pos
}

// WaitFor returns once an event at or after position has been applied
// (read-your-writes after an append), or when ctx ends.
func (p *Projection[M]) WaitFor(ctx context.Context, position uint64) error {
	for {
		p.mu.RLock()
		pos, ch, err := p.pos, p.changed, p.err
		p.mu.RUnlock()
		if pos >= position {
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("projection at %d waiting for %d: %w", pos, position, ctx.Err())
		}
	}
}
