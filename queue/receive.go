package queue

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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
}

// ReceiveOptions bound one Receive call.
type ReceiveOptions struct {
	// Max messages to return, 1 to 100. Default 1.
	Max int
	// Wait for messages this long when none is ready (long poll). 0 returns at once.
	Wait time.Duration
	// Consumer names the receiver for the consumer statistics. Optional.
	Consumer string
	// Stop, when closed, ends the wait early (server shutdown).
	Stop <-chan struct{}
}

// doorbell wakes waiting receivers when a message is published into a
// ready subject. It subscribes only while someone waits, so idle queues
// cost nothing; redeliveries and fired delays are caught by polling.
type doorbell struct {
	nc      *nats.Conn
	subject string

	mu      sync.Mutex
	ch      chan struct{}
	sub     *nats.Subscription
	waiters int
	closed  bool
}

func newDoorbell(nc *nats.Conn, subject string) *doorbell {
	return &doorbell{nc: nc, subject: subject, ch: make(chan struct{})}
}

// arm registers a waiter and returns the channel closed at the next publish.
func (b *doorbell) arm() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.waiters++
	if b.sub == nil && !b.closed {
		b.sub, _ = b.nc.Subscribe(b.subject, func(*nats.Msg) { b.ring() })
	}
	return b.ch
}

func (b *doorbell) ring() {
	b.mu.Lock()
	close(b.ch)
	b.ch = make(chan struct{})
	b.mu.Unlock()
}

func (b *doorbell) disarm() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.waiters--
	if b.waiters == 0 && b.sub != nil {
		_ = b.sub.Unsubscribe()
		b.sub = nil
	}
}

func (b *doorbell) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if b.sub != nil {
		_ = b.sub.Unsubscribe()
		b.sub = nil
	}
}

// Receive takes up to opts.Max messages, highest priority first, waiting
// up to opts.Wait for the first one. Each stays invisible to other
// receivers for the queue's visibility timeout unless acked or nacked.
func (c *Client) Receive(ctx context.Context, queue string, opts ReceiveOptions) ([]*Delivery, error) {
	q, err := c.state(ctx, queue)
	if err != nil {
		return nil, err
	}
	if opts.Max <= 0 {
		opts.Max = 1
	}
	c.consumerSeen(q, opts.Consumer)
	ds, err := c.receive(ctx, q, opts.Max, opts.Wait, opts.Stop)
	if len(ds) > 0 {
		dl := c.receiptDeadline(q)
		for _, d := range ds {
			d.Receipt = c.seal(q.n.queue, d.msg.Reply, dl) // only receivers outside Subscribe need one
		}
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
		msg: m, header: h,
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

// Receipts are "<base64url(ack subject)>.<base64url(deadline)>.<base64url(hmac)>":
// the HMAC, keyed with a secret every node shares through the engine,
// covers the queue name, the ack subject and the deadline, so a receipt
// cannot be forged nor used on another queue. The deadline is a little
// before the visibility timeout ends: after it the message may have been
// delivered to someone else, and the engine acks by sequence, so an old
// receipt must not ack or nack it (ErrReceiptExpired).
func (c *Client) seal(queue, reply string, deadline time.Time) string {
	var dl [8]byte
	binary.BigEndian.PutUint64(dl[:], uint64(deadline.UnixMilli()))
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(reply)) + "." + enc.EncodeToString(dl[:]) + "." + enc.EncodeToString(c.mac(queue, reply, dl[:]))
}

func (c *Client) mac(queue, reply string, deadline []byte) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(queue))
	m.Write([]byte{0})
	m.Write([]byte(reply))
	m.Write([]byte{0})
	m.Write(deadline)
	return m.Sum(nil)[:16]
}

// receiptDeadline is when a receipt issued now stops being accepted: 95%
// of the visibility timeout, so clock differences between nodes and the
// time since the engine delivered stay on the safe side.
func (c *Client) receiptDeadline(q *qstate) time.Time {
	return c.opts.Now().Add(q.cfg.Load().VisibilityTimeout.D() * 95 / 100)
}

// ackRef is what a verified receipt says.
type ackRef struct {
	reply     string
	seq       uint64
	delivered int
	priority  int
}

func (c *Client) open(q *qstate, receipt string) (ackRef, error) {
	bad := func(why string) (ackRef, error) {
		return ackRef{}, fmt.Errorf("%w: %s", ErrInvalidReceipt, why)
	}
	if len(receipt) > 1024 {
		return bad("too long")
	}
	parts := strings.Split(receipt, ".")
	if len(parts) != 3 {
		return bad("malformed")
	}
	enc := base64.RawURLEncoding
	reply, err1 := enc.DecodeString(parts[0])
	dl, err2 := enc.DecodeString(parts[1])
	sig, err3 := enc.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || len(dl) != 8 {
		return bad("malformed")
	}
	if !hmac.Equal(sig, c.mac(q.n.queue, string(reply), dl)) {
		return bad("not issued for this queue")
	}
	md, ok := parseAck(string(reply))
	if !ok || md.stream != q.n.stream || len(md.consumer) != 2 || md.consumer[0] != 'p' {
		return bad("not issued for this queue")
	}
	if c.opts.Now().UnixMilli() > int64(binary.BigEndian.Uint64(dl)) {
		return ackRef{}, fmt.Errorf("%w: the visibility timeout ended; the message may have been delivered again", ErrReceiptExpired)
	}
	return ackRef{reply: string(reply), priority: int(md.consumer[1] - '0'), delivered: md.delivered, seq: md.seq}, nil
}

// Ack confirms that the messages were processed; they leave the queue.
// Every receipt is checked before any is acknowledged.
func (c *Client) Ack(ctx context.Context, queue string, receipts []string) error {
	q, err := c.state(ctx, queue)
	if err != nil {
		return err
	}
	refs := make([]ackRef, len(receipts))
	for i, r := range receipts {
		if refs[i], err = c.open(q, r); err != nil {
			return err
		}
	}
	for _, ref := range refs {
		if err := c.nc.Publish(ref.reply, ackBody); err != nil {
			return fmt.Errorf("queue %q: ack: %w", queue, err)
		}
	}
	if err := c.flush(ctx); err != nil {
		return fmt.Errorf("queue %q: ack: %w", queue, err)
	}
	c.processed(q, int64(len(refs)))
	return nil
}

func (c *Client) processed(q *qstate, n int64) {
	q.processed.Add(n)
	q.m.processed.Add(float64(n))
}

// Nack reports a failed attempt with an error text. The message is retried
// after delay (0: the queue's retry policy) or, when this was its last
// attempt, dead-lettered with max_attempts_reached.
func (c *Client) Nack(ctx context.Context, queue, receipt, errText string, delay time.Duration) error {
	q, err := c.state(ctx, queue)
	if err != nil {
		return err
	}
	ref, err := c.open(q, receipt)
	if err != nil {
		return err
	}
	if delay < 0 || delay > maxDelay {
		return invalidMsg("delay %s: want 0 to %s", delay, maxDelay)
	}
	return c.nack(ctx, q, ref, nil, errText, delay)
}

// nack is shared by the receipt and SDK paths; m may be nil.
func (c *Client) nack(ctx context.Context, q *qstate, ref ackRef, m *nats.Msg, errText string, delay time.Duration) error {
	cfg := q.cfg.Load()
	c.failed(q, 1)
	if ref.delivered >= cfg.RetryAttempts && cfg.DeadLetterOf == "" {
		src, err := c.sourceOf(ctx, q, ref, m)
		if err != nil {
			return err
		}
		if err := c.deadLetter(ctx, q, src, ReasonMaxAttempts, ref.delivered, errText); err != nil {
			c.log.Error("dead-lettering failed; message kept", "queue", q.n.queue, "err", err)
		} else {
			return c.nc.Publish(ref.reply, ackBody)
		}
	}
	if errText != "" {
		c.rememberLastErr(ref.seq, errText)
	}
	if delay == 0 {
		delay = cfg.backoff(ref.delivered, c.jitter)
	}
	return c.nakAfter(ref.reply, delay)
}

func (c *Client) sourceOf(ctx context.Context, q *qstate, ref ackRef, m *nats.Msg) (source, error) {
	if m != nil {
		return source{subject: m.Subject, header: m.Header, data: m.Data, seq: ref.seq}, nil
	}
	raw, err := q.stream.GetMsg(ctx, ref.seq)
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return source{}, fmt.Errorf("%w: message already gone", ErrInvalidReceipt)
		}
		return source{}, fmt.Errorf("queue %q: nack: %w", q.n.queue, err)
	}
	return source{subject: raw.Subject, header: raw.Header, data: raw.Data, seq: raw.Sequence}, nil
}

// Extend restarts the visibility timeout of received messages and returns
// their new receipts (the old ones expire with the old timeout).
func (c *Client) Extend(ctx context.Context, queue string, receipts []string) ([]string, error) {
	q, err := c.state(ctx, queue)
	if err != nil {
		return nil, err
	}
	refs := make([]ackRef, len(receipts))
	for i, r := range receipts {
		if refs[i], err = c.open(q, r); err != nil {
			return nil, err
		}
	}
	dl := c.receiptDeadline(q)
	out := make([]string, len(refs))
	for i, ref := range refs {
		if err := c.nc.Publish(ref.reply, progressBody); err != nil {
			return nil, err
		}
		out[i] = c.seal(q.n.queue, ref.reply, dl)
	}
	return out, c.flush(ctx)
}

// flush waits until the engine has the acks sent so far.
func (c *Client) flush(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	return c.nc.FlushWithContext(ctx)
}

func parseNanos(s string) (time.Time, error) {
	ns, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(0, ns), nil
}
