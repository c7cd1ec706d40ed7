package queue

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// Delivery is a received message. Acknowledge it with its Receipt (HTTP,
// Broker.Ack) or, in a Subscribe handler, by returning.
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
func (b *Broker) Receive(ctx context.Context, queue string, opts ReceiveOptions) ([]*Delivery, error) {
	q, err := b.state(ctx, queue)
	if err != nil {
		return nil, err
	}
	if _, err := b.receiptKey(ctx); err != nil {
		return nil, err
	}
	if opts.Max <= 0 {
		opts.Max = 1
	}
	qvt := q.cfg.Load().VisibilityTimeout
	vt := opts.VisibilityTimeout
	if vt == 0 {
		vt = qvt
	}
	if vt < minVisibility || vt > maxVisibility {
		return nil, invalidMsg("visibilityTimeout %s: want %s to %s", vt, minVisibility, maxVisibility)
	}
	b.consumerSeen(q, opts.Consumer)
	if !b.holds.room(opts.Max) {
		return nil, b.holds.busy()
	}
	ds, err := b.receive(ctx, q, opts.Max, opts.Wait, opts.Stop)
	if len(ds) == 0 {
		return ds, err
	}
	if vt != qvt {
		for _, d := range ds { // this delivery's own timeout: visible again at now+vt
			_ = b.nakAfter(d.msg.Reply, vt)
		}
	}
	now := b.opts.Clock.Now()
	dl := now.Add(vt * 95 / 100)
	b.holds.add(q.n.queue, ds, vt, vt != qvt, now)
	for _, d := range ds {
		d.Receipt = b.seal(q.n.queue, receiptMeta{reply: d.msg.Reply, deadline: dl, issuer: b.holds.id, vt: vt})
	}
	return ds, err
}

// admit turns a fetched message into a delivery, or dead-letters it when
// it expired or has used up its attempts (then it returns nil).
func (b *Broker) admit(ctx context.Context, q *qstate, m *nats.Msg, p int) *Delivery {
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
	case cfg.TTL > 0 && b.opts.Clock.Now().Sub(ts) > cfg.TTL:
		b.leave(ctx, q, m, src, ReasonExpired, attempts-1, b.takeLastErr(src.seq))
		return nil
	case attempts > cfg.RetryAttempts && cfg.DeadLetterOf == "":
		le := b.takeLastErr(src.seq)
		if le == "" {
			le = "visibility timeout expired"
		}
		b.failed(q, 1)
		b.leave(ctx, q, m, src, ReasonMaxAttempts, attempts-1, le)
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
func (b *Broker) leave(ctx context.Context, q *qstate, m *nats.Msg, src source, reason string, attempts int, lastErr string) {
	if err := b.deadLetter(ctx, q, src, reason, attempts, lastErr); err != nil {
		if !errors.Is(err, errNoDLQ) {
			b.log.Error("dead-lettering failed; message kept", "queue", q.n.queue, "reason", reason, "err", err)
		}
		_ = b.nakAfter(m.Reply, q.cfg.Load().backoff(attempts+1, b.jitter))
		return
	}
	_ = b.nc.Publish(m.Reply, ackBody)
}

func parseNanos(s string) (time.Time, error) {
	ns, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(0, ns), nil
}
