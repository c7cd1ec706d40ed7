package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/plexushq/plexus/engine"
)

// Settling deliveries: Ack (done), Nack (failed, retried or dead-lettered)
// and Extend (more time), each by receipt (receipt.go) and checked against
// the delivery ledger (ledger.go) before anything changes.

var (
	ackBody      = []byte("+ACK")
	progressBody = []byte("+WPI")
)

// Ack confirms that the messages were processed; they leave the queue.
// Every receipt is checked before any is acknowledged: a receipt of an
// older delivery (the message was nacked or delivered again since) is
// ErrReceiptStale and nothing changes. Acking again with the same receipt
// is harmless and is counted once.
func (b *Broker) Ack(ctx context.Context, queue string, receipts []string) error {
	q, err := b.state(ctx, queue)
	if err != nil {
		return err
	}
	refs, err := b.openAll(ctx, q, receipts)
	if err != nil {
		return err
	}
	_, err = b.settle(ctx, q, refs, opAck, settleArgs{})
	return err
}

func (b *Broker) processed(q *qstate, n int64) {
	q.processed.Add(n)
	q.m.processed.Add(float64(n))
}

// Nack reports a failed attempt with an error text. The message is retried
// after delay (0: the queue's retry policy) or, when this was its last
// attempt, dead-lettered with max_attempts_reached. A receipt of an older
// delivery, or one used already, is ErrReceiptStale and changes nothing.
func (b *Broker) Nack(ctx context.Context, queue, receipt, errText string, delay time.Duration) error {
	q, err := b.state(ctx, queue)
	if err != nil {
		return err
	}
	if delay < 0 || delay > maxDelay {
		return invalidMsg("delay %s: want 0 to %s", delay, maxDelay)
	}
	refs, err := b.openAll(ctx, q, []string{receipt})
	if err != nil {
		return err
	}
	_, err = b.settle(ctx, q, refs, opNack, settleArgs{errText: errText, delay: delay})
	return err
}

// nack is shared by the receipt and SDK paths; m may be nil.
func (b *Broker) nack(ctx context.Context, q *qstate, ref ackRef, m *nats.Msg, errText string, delay time.Duration) error {
	cfg := q.cfg.Load()
	b.failed(q, 1)
	if ref.delivered >= cfg.RetryAttempts && cfg.DeadLetterOf == "" {
		src, err := b.sourceOf(ctx, q, ref, m)
		if err != nil {
			return err
		}
		if err := b.deadLetter(ctx, q, src, ReasonMaxAttempts, ref.delivered, errText); err != nil {
			b.log.Error("dead-lettering failed; message kept", "queue", q.n.queue, "err", err)
		} else {
			return b.nc.Publish(ref.reply, ackBody)
		}
	}
	if errText != "" {
		b.rememberLastErr(ref.seq, errText)
	}
	if delay == 0 {
		delay = cfg.backoff(ref.delivered, b.jitter)
	}
	return b.nakAfter(ref.reply, delay)
}

func (b *Broker) sourceOf(ctx context.Context, q *qstate, ref ackRef, m *nats.Msg) (source, error) {
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
func (b *Broker) Extend(ctx context.Context, queue string, receipts []string) ([]string, error) {
	q, err := b.state(ctx, queue)
	if err != nil {
		return nil, err
	}
	refs, err := b.openAll(ctx, q, receipts)
	if err != nil {
		return nil, err
	}
	s, err := b.settle(ctx, q, refs, opExtend, settleArgs{})
	return s.receipts, err
}

// flush waits until the engine has the acks sent so far.
func (b *Broker) flush(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.opts.RequestTimeout)
		defer cancel()
	}
	return b.nc.FlushWithContext(ctx)
}
