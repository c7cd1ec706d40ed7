package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/plexushq/plexus/engine"
)

// DeadLetter is a message that left its queue without being processed.
type DeadLetter struct {
	ID            string            `json:"id"`
	Payload       []byte            `json:"payload"`
	Headers       map[string]string `json:"headers,omitempty"`
	Priority      int               `json:"priority"`
	Attempts      int               `json:"attempts"`
	OriginalQueue string            `json:"originalQueue"`
	Reason        string            `json:"deadLetterReason"`
	Timestamp     time.Time         `json:"deadLetterTimestamp"`
	LastError     string            `json:"lastError,omitempty"`
	seq           uint64
}

// errNoDLQ: the queue is itself a dead-letter queue; its messages stay.
var errNoDLQ = errors.New("queue has no dead-letter queue")

// source is a stored message about to be dead-lettered.
type source struct {
	subject string
	header  nats.Header
	data    []byte
	seq     uint64
}

func priorityOf(subject string) int {
	if i := strings.LastIndexByte(subject, '.'); i >= 0 {
		if p, err := strconv.Atoi(subject[i+1:]); err == nil && p >= MinPriority && p <= MaxPriority {
			return p
		}
	}
	return 0
}

// deadLetter stores src in q's dead-letter queue. The caller removes the
// original only when this returns nil, so nothing leaves a queue silently.
func (b *Broker) deadLetter(ctx context.Context, q *qstate, src source, reason string, attempts int, lastErr string) error {
	cfg := q.cfg.Load()
	if cfg.DeadLetterOf != "" {
		return errNoDLQ
	}
	dq, err := b.state(ctx, cfg.DeadLetterQueue)
	if errors.Is(err, ErrQueueNotFound) {
		if err = b.ensureDLQ(ctx, cfg.DeadLetterQueue, q.n.queue); err == nil {
			dq, err = b.state(ctx, cfg.DeadLetterQueue)
		}
	}
	if err != nil {
		return fmt.Errorf("dead-letter queue %q: %w", cfg.DeadLetterQueue, err)
	}
	prio := priorityOf(src.subject)
	if err := b.addLevel(ctx, dq, prio); err != nil {
		return err
	}
	release, err := b.reserve(ctx, dq, 1)
	if err != nil {
		return err
	}
	defer release()
	h := make(nats.Header, len(src.header)+8)
	for k, v := range src.header {
		if !strings.HasPrefix(k, "Nats-") {
			h[k] = v
		}
	}
	if len(h[hdrID]) == 0 {
		h[hdrID] = []string{strconv.FormatUint(src.seq, 10)}
	}
	// The same stored message is dead-lettered once even when two nodes or
	// a retry after a crash try it again.
	h[jetstream.MsgIDHeader] = []string{"dl." + q.n.stream + "." + strconv.FormatUint(src.seq, 10)}
	h[hdrReason] = []string{reason}
	h[hdrOrigQueue] = []string{q.n.queue}
	h[hdrDLTime] = []string{strconv.FormatInt(b.opts.Clock.Now().UnixNano(), 10)}
	h[hdrAttempts] = []string{strconv.Itoa(attempts)}
	h[hdrPriority] = []string{strconv.Itoa(prio)}
	if lastErr != "" {
		h[hdrDLError] = []string{oneLine(lastErr)}
	}
	ack, err := b.js.PublishMsg(ctx, &nats.Msg{Subject: dq.n.ready[prio], Header: h, Data: src.data})
	if err != nil {
		return fmt.Errorf("dead-letter queue %q: publish: %w", dq.n.queue, engine.Classify(err))
	}
	if ack.Duplicate { // another node (or an earlier try) dead-lettered it: count it once
		return nil
	}
	b.published(dq, 1)
	q.deadLettered.Add(1)
	b.metrics.deadLettered.WithLabelValues(q.n.queue, reason).Inc()
	b.log.Warn("message dead-lettered", "queue", q.n.queue, "id", h.Get(hdrID), "reason", reason, "attempts", attempts)
	return nil
}

func oneLine(s string) string {
	s = strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
	if len(s) > 4096 {
		s = s[:4096]
	}
	return s
}

// DeadLetters lists up to limit dead letters of queue (oldest first).
func (b *Broker) DeadLetters(ctx context.Context, queue string, limit int) ([]DeadLetter, error) {
	var out []DeadLetter
	err := b.eachDeadLetter(ctx, queue, func(dq *qstate, d DeadLetter) (bool, error) {
		out = append(out, d)
		return limit <= 0 || len(out) < limit, nil
	})
	return out, err
}

// eachDeadLetter calls f for the dead letters of queue in order until f
// returns false.
func (b *Broker) eachDeadLetter(ctx context.Context, queue string, f func(dq *qstate, d DeadLetter) (bool, error)) error {
	q, err := b.state(ctx, queue)
	if err != nil {
		return err
	}
	cfg := q.cfg.Load()
	if cfg.DeadLetterOf != "" {
		return nil
	}
	dq, err := b.state(ctx, cfg.DeadLetterQueue)
	if errors.Is(err, ErrQueueNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	for seq := uint64(1); ; {
		raw, err := dq.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(dq.n.readyAll))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("dead-letter queue %q: %w", dq.n.queue, err)
		}
		seq = raw.Sequence + 1
		d := parseDeadLetter(raw)
		if d.OriginalQueue != queue {
			continue
		}
		if more, err := f(dq, d); err != nil || !more {
			return err
		}
	}
}

func parseDeadLetter(raw *jetstream.RawStreamMsg) DeadLetter {
	h := raw.Header
	d := DeadLetter{
		ID: h.Get(hdrID), Payload: raw.Data, OriginalQueue: h.Get(hdrOrigQueue),
		Reason: h.Get(hdrReason), LastError: h.Get(hdrDLError), seq: raw.Sequence,
		Headers: userHeaders(h),
	}
	d.Priority, _ = strconv.Atoi(h.Get(hdrPriority))
	d.Attempts, _ = strconv.Atoi(h.Get(hdrAttempts))
	if ns, err := strconv.ParseInt(h.Get(hdrDLTime), 10, 64); err == nil {
		d.Timestamp = time.Unix(0, ns).UTC()
	} else {
		d.Timestamp = raw.Time.UTC()
	}
	return d
}

// userHeaders are the headers a producer set (plus trace context).
func userHeaders(h nats.Header) map[string]string {
	var out map[string]string
	for k, v := range h {
		if len(v) == 0 || strings.HasPrefix(k, "Nats-") || strings.HasPrefix(k, "Plexus-") {
			continue
		}
		if out == nil {
			out = make(map[string]string, len(h))
		}
		out[k] = v[0]
	}
	return out
}

// Redrive moves dead letters of queue back into it: all of them when ids
// is empty, else those with the given ids. It returns how many moved.
func (b *Broker) Redrive(ctx context.Context, queue string, ids []string) (int, error) {
	q, err := b.state(ctx, queue)
	if err != nil {
		return 0, err
	}
	if err := b.opts.Writable(); err != nil {
		return 0, fmt.Errorf("queue %q: redrive: %w", queue, err)
	}
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	moved := 0
	err = b.eachDeadLetter(ctx, queue, func(dq *qstate, d DeadLetter) (bool, error) {
		if len(want) > 0 && !want[d.ID] {
			return true, nil
		}
		if err := b.addLevel(ctx, q, d.Priority); err != nil {
			return false, err
		}
		release, err := b.reserve(ctx, q, 1)
		if err != nil {
			return false, err
		}
		defer release()
		h := make(nats.Header, len(d.Headers)+3)
		for k, v := range d.Headers {
			h[k] = []string{v}
		}
		h[hdrID] = []string{d.ID}
		h[hdrTime] = []string{strconv.FormatInt(b.opts.Clock.Now().UnixNano(), 10)}
		h[jetstream.MsgIDHeader] = []string{"rd." + dq.n.stream + "." + strconv.FormatUint(d.seq, 10)}
		if _, err := b.js.PublishMsg(ctx, &nats.Msg{Subject: q.n.ready[d.Priority], Header: h, Data: d.Payload}); err != nil {
			return false, fmt.Errorf("queue %q: redrive: %w", queue, err)
		}
		b.published(q, 1)
		if err := dq.stream.DeleteMsg(ctx, d.seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return false, fmt.Errorf("queue %q: redrive: %w", queue, err)
		}
		moved++
		return true, nil
	})
	b.metrics.redriven.WithLabelValues(queue).Add(float64(moved))
	return moved, err
}

// PurgeDeadLetters deletes the dead letters of queue.
func (b *Broker) PurgeDeadLetters(ctx context.Context, queue string) (int, error) {
	n := 0
	err := b.eachDeadLetter(ctx, queue, func(dq *qstate, d DeadLetter) (bool, error) {
		if err := dq.stream.DeleteMsg(ctx, d.seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return false, fmt.Errorf("queue %q: purge dead letters: %w", queue, err)
		}
		n++
		return true, nil
	})
	return n, err
}
