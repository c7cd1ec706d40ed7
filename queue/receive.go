package queue

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// Delivery is a received message. Acknowledge it with its Receipt (HTTP,
// Client.Ack) or, in a Subscribe handler, by returning.
type Delivery struct {
	ID        string            `json:"id"`
	Payload   []byte            `json:"payload"`
	Priority  int               `json:"priority"`
	Attempts  int               `json:"attempts"` // this delivery included
	Timestamp time.Time         `json:"timestamp"`
	Headers   map[string]string `json:"headers,omitempty"`
	Receipt   string            `json:"receipt"`
	Queue     string            `json:"-"`

	msg    *nats.Msg
	header nats.Header
	seq    uint64 // stream sequence
}

// ReceiveOptions bound one Receive call.
type ReceiveOptions struct {
	// Max messages to return, 1 to 100. Default 1.
	Max int
	// Wait for messages this long when none is ready (long poll). 0 returns at once.
	Wait time.Duration
	// Consumer names the receiver for the consumer statistics. Optional.
	Consumer string
	// VisibilityTimeout is how long the messages stay invisible to other
	// receivers, 100ms to 12h. Default: the queue's. It holds for these
	// deliveries only (extend renews it with the same length).
	VisibilityTimeout time.Duration
	// Stop, when closed, ends the wait early (server shutdown).
	Stop <-chan struct{}
}

// Receive takes up to opts.Max messages, highest priority first, waiting
// up to opts.Wait for the first one. Each stays invisible to other
// receivers for the visibility timeout (the queue's, or opts') unless acked
// or nacked; its receipt is bound to this delivery.
func (c *Client) Receive(ctx context.Context, queue string, opts ReceiveOptions) ([]*Delivery, error) {
	q, err := c.state(ctx, queue)
	if err != nil {
		return nil, err
	}
	if _, err := c.receiptKey(ctx); err != nil {
		return nil, err
	}
	if opts.Max <= 0 {
		opts.Max = 1
	}
	qvt := q.cfg.Load().VisibilityTimeout.D()
	vt := opts.VisibilityTimeout
	if vt == 0 {
		vt = qvt
	}
	if vt < minVisibility || vt > maxVisibility {
		return nil, invalidMsg("visibilityTimeout %s: want %s to %s", vt, minVisibility, maxVisibility)
	}
	c.consumerSeen(q, opts.Consumer)
	if !c.holds.room(opts.Max) {
		return nil, c.holds.busy()
	}
	ds, err := c.receive(ctx, q, opts.Max, opts.Wait, opts.Stop)
	if len(ds) == 0 {
		return ds, err
	}
	if vt != qvt {
		for _, d := range ds { // this delivery's own timeout: visible again at now+vt
			_ = c.nakAfter(d.msg.Reply, vt)
		}
	}
	now := c.opts.Now()
	dl := now.Add(vt * 95 / 100)
	c.holds.add(q.n.queue, ds, vt, vt != qvt, now)
	for _, d := range ds {
		d.Receipt = c.seal(q.n.queue, receiptMeta{reply: d.msg.Reply, deadline: dl, issuer: c.holds.id, vt: vt})
	}
	return ds, err
}

func (c *Client) receive(ctx context.Context, q *qstate, max int, wait time.Duration, stop <-chan struct{}) ([]*Delivery, error) {
	var deadline <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		deadline = t.C
	}
	if wait > 0 && bits.OnesCount32(q.levels.Load()) == 1 {
		return c.longPoll(ctx, q, max, wait, stop)
	}
	pollNext := c.opts.PollInterval
	for {
		var bell <-chan struct{}
		if wait > 0 {
			bell = q.bell.arm() // before the sweep, so a publish during it is not missed
		}
		out, err := c.sweep(ctx, q, max)
		if err != nil || len(out) > 0 || wait <= 0 {
			if wait > 0 {
				q.bell.disarm()
			}
			return out, err
		}
		rang, done, err := c.await(ctx, bell, pollNext, deadline, stop)
		q.bell.disarm()
		if done {
			return nil, err
		}
		// The doorbell can ring before the engine has stored the message
		// (the stream stores it on its own goroutine): look again soon.
		if rang {
			pollNext = 2 * time.Millisecond
		} else {
			pollNext = min(2*pollNext, c.opts.PollInterval)
		}
	}
}

// longPoll serves a queue that uses one priority level: with no order
// between levels to keep, the engine can hold the pull until the first
// message arrives (in slices, so a newly used level is noticed within a second).
func (c *Client) longPoll(ctx context.Context, q *qstate, max int, wait time.Duration, stop <-chan struct{}) ([]*Delivery, error) {
	end := time.Now().Add(wait)
	mask := q.levels.Load()
	p := bits.TrailingZeros32(mask)
	for {
		left := time.Until(end)
		if left <= 0 {
			return nil, nil
		}
		if q.levels.Load() != mask {
			return c.receive(ctx, q, max, left, stop) // a level was added
		}
		pl, err := c.pullers.get()
		if err != nil {
			return nil, fmt.Errorf("queue %q: fetch: %w", q.n.queue, err)
		}
		msgs, err := pl.fetch(ctx, q.n.stream, consumerName(p), max, min(left, time.Second), stop, nil)
		c.pullers.put(pl, err == nil)
		var out []*Delivery
		for _, m := range msgs {
			if d := c.admit(ctx, q, m, p); d != nil {
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
func (c *Client) await(ctx context.Context, bell <-chan struct{}, every time.Duration, deadline <-chan time.Time, stop <-chan struct{}) (rang, done bool, err error) {
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
func (c *Client) sweep(ctx context.Context, q *qstate, max int) ([]*Delivery, error) {
	pl, err := c.pullers.get()
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
			if d := c.admit(ctx, q, m, p); d != nil {
				out = append(out, d)
			}
		}
		if err != nil {
			break
		}
	}
	c.pullers.put(pl, err == nil)
	if err != nil && len(out) == 0 {
		return nil, fmt.Errorf("queue %q: fetch: %w", q.n.queue, err)
	}
	return out, nil
}

// admit turns a fetched message into a delivery, or dead-letters it when
// it expired or has used up its attempts (then it returns nil).
func (c *Client) admit(ctx context.Context, q *qstate, m *nats.Msg, p int) *Delivery {
	cfg := q.cfg.Load()
	md, ok := parseAck(m.Reply)
	if !ok {
		return nil
	}
	h := m.Header
	ts := md.ts
	if t, err := parseNanos(h.Get(hdrTime)); err == nil {
		ts = t
	}
	attempts := md.delivered
	src := source{subject: m.Subject, header: h, data: m.Data, seq: md.seq}
	switch {
	case cfg.TTL.D() > 0 && c.opts.Now().Sub(ts) > cfg.TTL.D():
		c.leave(ctx, q, m, src, ReasonExpired, attempts-1, c.takeLastErr(src.seq))
		return nil
	case attempts > cfg.RetryAttempts && cfg.DeadLetterOf == "":
		le := c.takeLastErr(src.seq)
		if le == "" {
			le = "visibility timeout expired"
		}
		c.failed(q, 1)
		c.leave(ctx, q, m, src, ReasonMaxAttempts, attempts-1, le)
		return nil
	}
	d := &Delivery{
		ID: h.Get(hdrID), Payload: m.Data, Priority: p, Attempts: attempts,
		Timestamp: ts.UTC(), Headers: userHeaders(h), Queue: q.n.queue,
		msg: m, header: h, seq: md.seq,
	}
	q.m.received.Inc()
	return d
}

// leave dead-letters a fetched message and acks it away; if the dead-letter
// queue refuses, the message is retried later instead of lost.
func (c *Client) leave(ctx context.Context, q *qstate, m *nats.Msg, src source, reason string, attempts int, lastErr string) {
	if err := c.deadLetter(ctx, q, src, reason, attempts, lastErr); err != nil {
		if !errors.Is(err, errNoDLQ) {
			c.log.Error("dead-lettering failed; message kept", "queue", q.n.queue, "reason", reason, "err", err)
		}
		_ = c.nakAfter(m.Reply, q.cfg.Load().backoff(attempts+1, c.jitter))
		return
	}
	_ = c.nc.Publish(m.Reply, ackBody)
}

var (
	ackBody      = []byte("+ACK")
	progressBody = []byte("+WPI")
)

// nakAfter returns a message for redelivery after delay. Consumer BackOff
// does not apply to naks, so the delay always travels with the nak.
func (c *Client) nakAfter(reply string, delay time.Duration) error {
	if delay <= 0 {
		return c.nc.Publish(reply, []byte("-NAK"))
	}
	return c.nc.Publish(reply, fmt.Appendf(nil, `-NAK {"delay": %d}`, delay.Nanoseconds()))
}

func (c *Client) failed(q *qstate, n int64) {
	q.failed.Add(n)
	q.m.failed.Add(float64(n))
}

func (c *Client) rememberLastErr(seq uint64, s string) {
	c.lastErrMu.Lock()
	defer c.lastErrMu.Unlock()
	if len(c.lastErr) >= maxLastErr {
		for k := range c.lastErr { // evict an arbitrary entry: a bounded best-effort cache
			delete(c.lastErr, k)
			break
		}
	}
	c.lastErr[seq] = oneLine(s)
}

func (c *Client) takeLastErr(seq uint64) string {
	c.lastErrMu.Lock()
	defer c.lastErrMu.Unlock()
	s := c.lastErr[seq]
	delete(c.lastErr, seq)
	return s
}

func parseNanos(s string) (time.Time, error) {
	ns, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(0, ns), nil
}
