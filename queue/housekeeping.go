package queue

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Start begins the broker's housekeeping: every
// Options.HousekeepingInterval it dead-letters expired messages no
// receiver has taken and flushes the statistics counters (Maintain). A
// node starts its broker; a program that only publishes and receives
// need not (the node's broker keeps the queues tidy).
func (b *Broker) Start(context.Context) error {
	b.hkMu.Lock()
	defer b.hkMu.Unlock()
	if b.hkStop != nil {
		return errors.New("queue: broker already started")
	}
	b.hkStop, b.hkDone = make(chan struct{}), make(chan struct{})
	// halt ends a round in flight when Stop is called (it may wait on an
	// engine that is failing over).
	halt, cancel := context.WithCancel(context.Background())
	b.hkHalt = cancel
	go b.housekeep(halt, b.hkStop, b.hkDone)
	return nil
}

// Stop ends housekeeping, flushes the counters and closes the broker,
// bounded by ctx. Subscriptions must be stopped first.
func (b *Broker) Stop(ctx context.Context) error {
	b.hkMu.Lock()
	stop, done, halt := b.hkStop, b.hkDone, b.hkHalt
	b.hkStop, b.hkHalt = nil, nil
	b.hkMu.Unlock()
	if stop != nil {
		close(stop)
		halt()
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var errs []error
	for _, q := range b.attached() {
		if err := b.flushCounters(ctx, q); err != nil {
			errs = append(errs, err)
		}
	}
	b.Close()
	return errors.Join(errs...)
}

func (b *Broker) housekeep(halt context.Context, stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(b.opts.HousekeepingInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(halt, 30*time.Second)
		if err := b.Maintain(ctx); err != nil && !errors.Is(err, ErrClosed) && halt.Err() == nil {
			b.log.Warn("queue housekeeping", "err", err)
		}
		cancel()
	}
}

// attached lists the queues this broker has used.
func (b *Broker) attached() []*qstate {
	b.mu.Lock()
	defer b.mu.Unlock()
	qs := make([]*qstate, 0, len(b.queues))
	for _, q := range b.queues {
		qs = append(qs, q)
	}
	return qs
}

// Configure creates or updates the queues of a configuration file's
// queues: section. Every entry is checked first (Check), so an invalid
// section changes nothing.
func (b *Broker) Configure(ctx context.Context, queues map[string]Config) error {
	if err := Check(queues); err != nil {
		return err
	}
	names := make([]string, 0, len(queues))
	for n := range queues {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if _, _, err := b.CreateQueue(ctx, n, queues[n]); err != nil {
			return fmt.Errorf("queue %q from configuration: %w", n, err)
		}
	}
	return nil
}

// Check validates the queues of a configuration file's queues: section
// without touching the engine: every name and every option.
func Check(queues map[string]Config) error {
	for n, cfg := range queues {
		if !ValidName(n) {
			return fmt.Errorf("queues: %w: %q", ErrInvalidName, n)
		}
		cfg.Normalize(n)
		if err := cfg.Validate(n); err != nil {
			return fmt.Errorf("queues: %s: %w", n, err)
		}
	}
	return nil
}

// Maintain runs one round of housekeeping for every queue: it dead-letters
// expired messages that no receiver has taken yet and flushes counters.
// A started broker calls it every Options.HousekeepingInterval.
func (b *Broker) Maintain(ctx context.Context) error {
	names, err := b.Names(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		q, err := b.state(ctx, n)
		if err != nil {
			continue
		}
		if err := b.expire(ctx, q, 1000); err != nil {
			errs = append(errs, err)
		}
		if err := b.flushCounters(ctx, q); err != nil {
			errs = append(errs, err)
		}
	}
	b.expireSeen()
	return errors.Join(errs...)
}

func (b *Broker) expireSeen() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, t := range b.seen {
		if time.Since(t) > 5*time.Minute {
			delete(b.seen, k)
		}
	}
}

// expire dead-letters up to max expired messages that were never
// delivered (stream sequence above the level's delivered floor).
func (b *Broker) expire(ctx context.Context, q *qstate, max int) error {
	cfg := q.cfg.Load()
	if cfg.TTL <= 0 {
		return nil
	}
	for p := range levels {
		if q.levels.Load()&(1<<p) == 0 {
			continue
		}
		ci, err := q.consumerInfo(ctx, p)
		if err != nil {
			return err
		}
		for seq := ci.Delivered.Stream + 1; max > 0; max-- {
			raw, err := q.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(q.n.ready[p]))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				break
			}
			if err != nil {
				return err
			}
			seq = raw.Sequence + 1
			ts := raw.Time
			if ns, err := parseNanos(raw.Header.Get(hdrTime)); err == nil {
				ts = ns
			}
			if b.opts.Clock.Now().Sub(ts) <= cfg.TTL {
				break
			}
			src := source{subject: raw.Subject, header: raw.Header, data: raw.Data, seq: raw.Sequence}
			if err := b.deadLetter(ctx, q, src, ReasonExpired, 0, ""); err != nil {
				return err
			}
			if err := q.stream.DeleteMsg(ctx, raw.Sequence); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
				return err
			}
		}
	}
	return nil
}
