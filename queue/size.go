package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/plexushq/plexus/engine"
)

// sizeFresh is how long a cached size is trusted far from the limit.
const sizeFresh = 250 * time.Millisecond

// reserve makes room for n more messages in q. Far below maxSize (a fresh
// estimate under 90%) it returns at once. Near it, publishers of this
// client take turns (q.pubMu, held until release): each reads the size
// from the engine and, when the messages would not fit, the overflow
// policy rejects them (ErrQueueFull, 507) or dead-letters the oldest ready
// messages with reason overflow until they fit. So one node never lets a
// queue pass maxSize; several nodes can pass it by what the others publish
// while one checks (at most one publish or batch per node at a time).
// release must be called once the messages are published.
func (b *Broker) reserve(ctx context.Context, q *qstate, n int) (release func(), err error) {
	limit := int64(q.cfg.Load().MaxSize)
	q.sizeMu.Lock()
	size, fresh := q.size, time.Since(q.sizeAt) < sizeFresh
	q.sizeMu.Unlock()
	if fresh && size+int64(n) <= limit*9/10 {
		return func() {}, nil
	}
	q.pubMu.Lock()
	if err := b.makeRoom(ctx, q, n); err != nil {
		q.pubMu.Unlock()
		return nil, err
	}
	return q.pubMu.Unlock, nil
}

// makeRoom reads the size from the engine and applies the overflow policy
// until n more messages fit. Another node dropping the same oldest message
// (its dead letter is deduplicated) just means one more round.
func (b *Broker) makeRoom(ctx context.Context, q *qstate, n int) error {
	cfg := q.cfg.Load()
	limit := int64(cfg.MaxSize)
	full := func() error {
		b.metrics.rejected.WithLabelValues(q.n.queue).Inc()
		return fmt.Errorf("%w: queue %q: max size %d reached", ErrQueueFull, q.n.queue, cfg.MaxSize)
	}
	if int64(n) > limit {
		return full()
	}
	for round := 0; ; round++ {
		si, err := q.stream.Info(ctx)
		if err != nil {
			return fmt.Errorf("queue %q: size: %w", q.n.queue, engine.Classify(err))
		}
		size := int64(si.State.Msgs)
		q.sizeMu.Lock()
		q.size, q.sizeAt = size, time.Now()
		q.sizeMu.Unlock()
		over := size + int64(n) - limit
		switch {
		case over <= 0:
			return nil
		case cfg.Overflow == OverflowReject || round > n+8:
			return full()
		}
		for range over {
			if err := b.dropOldest(ctx, q); err != nil {
				return err
			}
		}
	}
}

// dropOldest dead-letters the oldest ready message with reason overflow,
// then deletes it. The dead letter's dedupe id makes a message that two
// nodes drop at once a single dead letter (counted once).
func (b *Broker) dropOldest(ctx context.Context, q *qstate) error {
	raw, err := q.stream.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(q.n.readyAll))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		// Only delayed messages fill the queue: nothing ready to drop.
		return fmt.Errorf("%w: queue %q: max size %d reached by delayed messages", ErrQueueFull, q.n.queue, q.cfg.Load().MaxSize)
	}
	if err != nil {
		return fmt.Errorf("queue %q: overflow: %w", q.n.queue, engine.Classify(err))
	}
	src := source{subject: raw.Subject, header: raw.Header, data: raw.Data, seq: raw.Sequence}
	if err := b.deadLetter(ctx, q, src, ReasonOverflow, 0, ""); err != nil {
		return fmt.Errorf("queue %q: overflow: %w", q.n.queue, err)
	}
	if err := q.stream.DeleteMsg(ctx, raw.Sequence); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("queue %q: overflow: %w", q.n.queue, engine.Classify(err))
	}
	return nil
}
