package queue

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/plexushq/plexus/engine"
)

// Receipts are "<base64url(ack subject)>.<base64url(meta)>.<base64url(hmac)>"
// where meta is the receipt's deadline (unix ms), its issuer (the client
// that handed the delivery out and settles it, holds.go) and the
// delivery's visibility timeout (ms). The HMAC, keyed with a secret every
// node shares through the engine, covers the queue name, the ack subject
// and meta, so a receipt cannot be forged nor used on another queue. The
// deadline is a little before the visibility timeout ends
// (ErrReceiptExpired after it); the ack subject names the delivery (its
// stream sequence and delivery count), which the issuer checks
// (ErrReceiptStale once it was nacked or delivered again).
type receiptMeta struct {
	reply    string
	deadline time.Time
	issuer   uint64
	vt       time.Duration
}

const metaLen = 20

// seal signs a receipt; the key was loaded by the caller (receiptKey).
func (c *Client) seal(queue string, rm receiptMeta) string {
	var meta [metaLen]byte
	binary.BigEndian.PutUint64(meta[0:], uint64(rm.deadline.UnixMilli()))
	binary.BigEndian.PutUint64(meta[8:], rm.issuer)
	binary.BigEndian.PutUint32(meta[16:], uint32(rm.vt.Milliseconds()))
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(rm.reply)) + "." + enc.EncodeToString(meta[:]) + "." +
		enc.EncodeToString(c.mac(queue, rm.reply, meta[:]))
}

func (c *Client) mac(queue, reply string, meta []byte) []byte {
	m, _ := c.macs.Get().(hash.Hash)
	if m == nil {
		m = hmac.New(sha256.New, *c.key.Load())
	}
	m.Reset() // back to the keyed state, without hashing the key again
	_, _ = io.WriteString(m, queue)
	m.Write([]byte{0})
	_, _ = io.WriteString(m, reply)
	m.Write([]byte{0})
	m.Write(meta)
	sum := m.Sum(make([]byte, 0, sha256.Size))[:16]
	c.macs.Put(m)
	return sum
}

// ackRef is what a verified receipt says.
type ackRef struct {
	receipt   string
	reply     string
	seq       uint64 // stream sequence
	delivered int
	priority  int
	issuer    uint64 // the client that settles it
	vt        time.Duration
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
	meta, err2 := enc.DecodeString(parts[1])
	sig, err3 := enc.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || len(meta) != metaLen {
		return bad("malformed")
	}
	if !hmac.Equal(sig, c.mac(q.n.queue, string(reply), meta)) {
		return bad("not issued for this queue")
	}
	md, ok := parseAck(string(reply))
	if !ok || md.stream != q.n.stream || len(md.consumer) != 2 || md.consumer[0] != 'p' {
		return bad("not issued for this queue")
	}
	if c.opts.Now().UnixMilli() > int64(binary.BigEndian.Uint64(meta[0:])) {
		return ackRef{}, fmt.Errorf("%w: the visibility timeout ended; the message may have been delivered again", ErrReceiptExpired)
	}
	return ackRef{receipt: receipt, reply: string(reply), priority: int(md.consumer[1] - '0'), delivered: md.delivered, seq: md.seq,
		issuer: binary.BigEndian.Uint64(meta[8:]), vt: time.Duration(binary.BigEndian.Uint32(meta[16:])) * time.Millisecond}, nil
}

// openAll verifies every receipt (format, signature, queue, deadline).
func (c *Client) openAll(ctx context.Context, q *qstate, receipts []string) ([]ackRef, error) {
	if _, err := c.receiptKey(ctx); err != nil {
		return nil, err
	}
	refs := make([]ackRef, len(receipts))
	for i, r := range receipts {
		var err error
		if refs[i], err = c.open(q, r); err != nil {
			return nil, err
		}
	}
	return refs, nil
}

// Ack confirms that the messages were processed; they leave the queue.
// Every receipt is checked before any is acknowledged: a receipt of an
// older delivery (the message was nacked or delivered again since) is
// ErrReceiptStale and nothing changes. Acking again with the same receipt
// is harmless and is counted once.
func (c *Client) Ack(ctx context.Context, queue string, receipts []string) error {
	q, err := c.state(ctx, queue)
	if err != nil {
		return err
	}
	refs, err := c.openAll(ctx, q, receipts)
	if err != nil {
		return err
	}
	_, err = c.settle(ctx, q, refs, opAck, settleArgs{})
	return err
}

func (c *Client) processed(q *qstate, n int64) {
	q.processed.Add(n)
	q.m.processed.Add(float64(n))
}

// Nack reports a failed attempt with an error text. The message is retried
// after delay (0: the queue's retry policy) or, when this was its last
// attempt, dead-lettered with max_attempts_reached. A receipt of an older
// delivery, or one used already, is ErrReceiptStale and changes nothing.
func (c *Client) Nack(ctx context.Context, queue, receipt, errText string, delay time.Duration) error {
	q, err := c.state(ctx, queue)
	if err != nil {
		return err
	}
	if delay < 0 || delay > maxDelay {
		return invalidMsg("delay %s: want 0 to %s", delay, maxDelay)
	}
	refs, err := c.openAll(ctx, q, []string{receipt})
	if err != nil {
		return err
	}
	_, err = c.settle(ctx, q, refs, opNack, settleArgs{errText: errText, delay: delay})
	return err
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
		return source{}, fmt.Errorf("queue %q: nack: %w", q.n.queue, engine.Classify(err))
	}
	return source{subject: raw.Subject, header: raw.Header, data: raw.Data, seq: raw.Sequence}, nil
}

// Extend restarts the visibility timeout of received messages (with the
// length they were received with) and returns their new receipts; the old
// ones expire with the old timeout. Every receipt must be its message's
// current delivery (else ErrReceiptStale, nothing changes).
func (c *Client) Extend(ctx context.Context, queue string, receipts []string) ([]string, error) {
	q, err := c.state(ctx, queue)
	if err != nil {
		return nil, err
	}
	refs, err := c.openAll(ctx, q, receipts)
	if err != nil {
		return nil, err
	}
	s, err := c.settle(ctx, q, refs, opExtend, settleArgs{})
	return s.receipts, err
}

// flush waits until the engine has the acks sent so far.
func (c *Client) flush(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.RequestTimeout)
		defer cancel()
	}
	return c.nc.FlushWithContext(ctx)
}
