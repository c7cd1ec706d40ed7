package queue

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"time"

	"github.com/nats-io/nats.go"
)

// A receive that finds nothing ready waits for up to its Wait. A queue
// that uses one priority level lets the engine hold the pull (longPoll);
// with several levels, whose order must be kept, the receive sweeps them
// highest first and sleeps until the queue's doorbell rings (a publish,
// doorbell.go) or the poll interval passes (redeliveries and fired delays
// ring no bell).

// receive takes up to max messages, waiting up to wait for the first.
func (b *Broker) receive(ctx context.Context, q *qstate, max int, wait time.Duration, stop <-chan struct{}) ([]*Delivery, error) {
	var deadline <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		deadline = t.C
	}
	if wait > 0 && bits.OnesCount32(q.levels.Load()) == 1 {
		return b.longPoll(ctx, q, max, wait, stop)
	}
	pollNext := b.opts.PollInterval
	for {
		var bell <-chan struct{}
		if wait > 0 {
			bell = q.bell.arm() // before the sweep, so a publish during it is not missed
		}
		out, err := b.sweep(ctx, q, max)
		if err != nil || len(out) > 0 || wait <= 0 {
			if wait > 0 {
				q.bell.disarm()
			}
			return out, err
		}
		rang, done, err := b.await(ctx, bell, pollNext, deadline, stop)
		q.bell.disarm()
		if done {
			return nil, err
		}
		// The doorbell can ring before the engine has stored the message
		// (the stream stores it on its own goroutine): look again soon.
		if rang {
			pollNext = 2 * time.Millisecond
		} else {
			pollNext = min(2*pollNext, b.opts.PollInterval)
		}
	}
}

// longPoll serves a queue that uses one priority level: with no order
// between levels to keep, the engine can hold the pull until the first
// message arrives (in slices, so a newly used level is noticed within a second).
func (b *Broker) longPoll(ctx context.Context, q *qstate, max int, wait time.Duration, stop <-chan struct{}) ([]*Delivery, error) {
	end := time.Now().Add(wait)
	mask := q.levels.Load()
	p := bits.TrailingZeros32(mask)
	for {
		left := time.Until(end)
		if left <= 0 {
			return nil, nil
		}
		if q.levels.Load() != mask {
			return b.receive(ctx, q, max, left, stop) // a level was added
		}
		pl, err := b.pullers.get()
		if err != nil {
			return nil, fmt.Errorf("queue %q: fetch: %w", q.n.queue, err)
		}
		msgs, err := pl.fetch(ctx, q.n.stream, consumerName(p), max, min(left, time.Second), stop, nil)
		b.pullers.put(pl, err == nil)
		var out []*Delivery
		for _, m := range msgs {
			if d := b.admit(ctx, q, m, p); d != nil {
				out = append(out, d)
			}
		}
		switch {
		case len(out) > 0:
			return out, nil
		case errors.Is(err, errStopped):
			return nil, nil
		case err != nil:
			return nil, fmt.Errorf("queue %q: fetch: %w", q.n.queue, err)
		}
	}
}

// await waits for the doorbell (rang) or the poll interval, or for the
// deadline, a stop or ctx (done).
func (b *Broker) await(ctx context.Context, bell <-chan struct{}, every time.Duration, deadline <-chan time.Time, stop <-chan struct{}) (rang, done bool, err error) {
	poll := time.NewTimer(every)
	defer poll.Stop()
	select {
	case <-bell:
		return true, false, nil
	case <-poll.C:
		return false, false, nil
	case <-deadline:
		return false, true, nil
	case <-stop:
		return false, true, nil
	case <-ctx.Done():
		return false, true, ctx.Err()
	}
}

// sweep fetches from the priority levels highest first until max messages
// are taken or every level is empty.
func (b *Broker) sweep(ctx context.Context, q *qstate, max int) ([]*Delivery, error) {
	pl, err := b.pullers.get()
	if err != nil {
		return nil, fmt.Errorf("queue %q: fetch: %w", q.n.queue, err)
	}
	var out []*Delivery
	var msgs []*nats.Msg
	mask := q.levels.Load()
	for p := MaxPriority; p >= MinPriority && len(out) < max; p-- {
		if mask&(1<<p) == 0 {
			continue
		}
		msgs, err = pl.fetchNoWait(ctx, q.n.stream, consumerName(p), max-len(out), msgs[:0])
		for _, m := range msgs {
			if d := b.admit(ctx, q, m, p); d != nil {
				out = append(out, d)
			}
		}
		if err != nil {
			break
		}
	}
	b.pullers.put(pl, err == nil)
	if err != nil && len(out) == 0 {
		return nil, fmt.Errorf("queue %q: fetch: %w", q.n.queue, err)
	}
	return out, nil
}
