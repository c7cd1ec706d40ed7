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
	"github.com/nats-io/nuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/retry"
	"github.com/plexushq/plexus/telemetry"
)

// Message is what a producer publishes.
type Message struct {
	// ID makes the publish idempotent: the same ID within the dedupe window
	// (2 minutes) is stored once. Empty: a unique ID is generated.
	ID string `json:"id,omitempty"`
	// Payload is the message body (for the HTTP API: any JSON value).
	Payload []byte `json:"payload"`
	// Priority 0–9, higher first. Default 0.
	Priority int `json:"priority,omitempty"`
	// Delay before the message becomes deliverable.
	Delay time.Duration `json:"delay,omitempty"`
	// Headers travel with the message. Names starting with "Nats-" or
	// "Plexus-" are reserved.
	Headers map[string]string `json:"headers,omitempty"`
}

// Header names Plexus keeps on stored messages.
const (
	hdrID        = "Plexus-Id"
	hdrTime      = "Plexus-Time" // publish time, unix nanoseconds
	hdrReason    = "Plexus-Dl-Reason"
	hdrOrigQueue = "Plexus-Dl-Queue"
	hdrDLTime    = "Plexus-Dl-Time"
	hdrDLError   = "Plexus-Dl-Error"
	hdrAttempts  = "Plexus-Attempts"
	hdrPriority  = "Plexus-Priority"
)

const (
	maxIDLen   = 256
	maxHeaders = 64
	maxDelay   = 90 * 24 * time.Hour
)

// Validate checks a message's priority, delay, id and headers.
func (m *Message) Validate() error {
	if m.Priority < MinPriority || m.Priority > MaxPriority {
		return invalidMsg("priority %d: want %d to %d", m.Priority, MinPriority, MaxPriority)
	}
	if m.Delay < 0 || m.Delay > maxDelay {
		return invalidMsg("delay %s: want 0 to %s", m.Delay, maxDelay)
	}
	if len(m.ID) > maxIDLen {
		return invalidMsg("id longer than %d bytes", maxIDLen)
	}
	for i := 0; i < len(m.ID); i++ {
		if m.ID[i] <= ' ' || m.ID[i] >= 0x7f {
			return invalidMsg("id %q: want printable ASCII without spaces", m.ID)
		}
	}
	if len(m.Headers) > maxHeaders {
		return invalidMsg("%d headers: want at most %d", len(m.Headers), maxHeaders)
	}
	for k, v := range m.Headers {
		if !validHeaderName(k) {
			return invalidMsg("header name %q: want a token of letters, digits and -", k)
		}
		if l := strings.ToLower(k); strings.HasPrefix(l, "nats-") || strings.HasPrefix(l, "plexus-") {
			return invalidMsg("header %q: names starting with Nats- or Plexus- are reserved", k)
		}
		if strings.ContainsAny(v, "\r\n") || len(v) > 4096 {
			return invalidMsg("header %q: value must be one line of at most 4096 bytes", k)
		}
	}
	return nil
}

func validHeaderName(k string) bool {
	if k == "" || len(k) > 128 {
		return false
	}
	for i := 0; i < len(k); i++ {
		ch := k[i]
		if !(ch == '-' || ch == '_' || ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z') {
			return false
		}
	}
	return true
}

// build turns m into the stored NATS message.
func (b *Broker) build(ctx context.Context, q *qstate, m *Message, now time.Time) *nats.Msg {
	id := m.ID
	h := make(nats.Header, len(m.Headers)+2)
	for k, v := range m.Headers {
		h[k] = []string{v}
	}
	telemetry.InjectHeader(ctx, h)
	if id == "" {
		// A generated id is unique: no need for the engine's dedupe.
		id = nuid.Next()
	} else {
		h[jetstream.MsgIDHeader] = []string{id}
	}
	h[hdrID] = []string{id}
	// The publish time by the client's clock (a fired delayed copy gets a
	// new stream time; TTL counts from the publish).
	h[hdrTime] = []string{strconv.FormatInt(now.UnixNano(), 10)}
	subj := q.n.ready[m.Priority]
	if m.Delay > 0 {
		// A schedule on a subject no consumer reads: the engine republishes
		// it into the ready subject at the time, so it is never delivered
		// early, never blocks others, and acking never cancels it.
		h[jetstream.ScheduleHeader] = []string{"@at " + now.Add(m.Delay).UTC().Format(time.RFC3339Nano)}
		h[jetstream.ScheduleTargetHeader] = []string{subj}
		subj = q.n.delayed(nuid.Next())
	}
	return &nats.Msg{Subject: subj, Header: h, Data: m.Payload}
}

func (b *Broker) startSpan(ctx context.Context, name, queue string, kind trace.SpanKind, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if !b.spans {
		// No provider: no span, and none of its allocations on the hot path.
		return ctx, noopSpan
	}
	opts = append(opts, trace.WithSpanKind(kind), trace.WithAttributes(
		attribute.String("messaging.system", "plexus"),
		attribute.String("messaging.destination.name", queue)))
	return b.tracer.Start(ctx, name+" "+queue, opts...)
}

var noopSpan = trace.SpanFromContext(context.Background()) // a no-op span

func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// Publish stores one message and returns its id once the engine has it.
func (b *Broker) Publish(ctx context.Context, queue string, m Message) (string, error) {
	ids, err := b.PublishBatch(ctx, queue, []Message{m})
	if err != nil {
		return "", err
	}
	return ids[0], nil
}

// PublishBatch stores messages with pipelined publishes and one wait for
// all acknowledgements. It is not atomic: on error some messages may be
// stored; publishing the batch again with the same ids is safe.
func (b *Broker) PublishBatch(ctx context.Context, queue string, msgs []Message) ([]string, error) {
	q, err := b.state(ctx, queue)
	if err != nil {
		return nil, err
	}
	for i := range msgs {
		if err := msgs[i].Validate(); err != nil {
			if len(msgs) > 1 {
				return nil, fmt.Errorf("message %d: %w", i, err)
			}
			return nil, err
		}
	}
	ctx, span := b.startSpan(ctx, "publish", queue, trace.SpanKindProducer,
		trace.WithAttributes(attribute.Int("messaging.batch.message_count", len(msgs))))
	ids, err := b.publish(ctx, q, msgs)
	endSpan(span, err)
	return ids, err
}

func (b *Broker) publish(ctx context.Context, q *qstate, msgs []Message) ([]string, error) {
	if err := b.opts.Writable(); err != nil {
		return nil, fmt.Errorf("queue %q: publish: %w", q.n.queue, err)
	}
	for i := range msgs {
		if err := b.addLevel(ctx, q, msgs[i].Priority); err != nil {
			return nil, err
		}
	}
	release, err := b.reserve(ctx, q, len(msgs))
	if err != nil {
		return nil, err
	}
	defer release()
	now := b.opts.Clock.Now()
	ids := make([]string, len(msgs))
	built := make([]*nats.Msg, len(msgs))
	for i := range msgs {
		built[i] = b.build(ctx, q, &msgs[i], now)
		if err := engine.CheckMsg(b.nc, built[i]); err != nil {
			return nil, fmt.Errorf("queue %q: message %d: %w", q.n.queue, i, err)
		}
	}
	for i, nm := range built {
		ids[i] = nm.Header[hdrID][0]
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.opts.RequestTimeout)
		defer cancel()
	}
	// While the engine fails over (no leader, no responders, a timeout) the
	// same messages are sent again, with the same ids: the engine stores a
	// message it already has once (its duplicate window), so a retry never
	// doubles one. Each attempt waits for its acknowledgements at most
	// RequestTimeout, however long the caller's context allows: a lost
	// answer is sent again instead of waited on.
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, b.opts.RequestTimeout)
		stored, err := b.send(actx, q, built)
		cancel()
		b.published(q, stored)
		if err == nil {
			return ids, nil
		}
		if !errors.Is(err, engine.ErrUnavailable) || ctx.Err() != nil {
			return nil, err
		}
		if retry.Sleep(ctx, min(50*time.Millisecond<<min(attempt, 5), time.Second)) != nil {
			return nil, err
		}
	}
}

// send publishes built messages once and reports how many were stored new
// (not duplicates).
func (b *Broker) send(ctx context.Context, q *qstate, built []*nats.Msg) (int64, error) {
	if len(built) == 1 {
		ack, err := b.js.PublishMsg(ctx, built[0])
		if err != nil {
			return 0, fmt.Errorf("queue %q: publish: %w", q.n.queue, engine.Classify(err))
		}
		if ack.Duplicate {
			return 0, nil
		}
		return 1, nil
	}
	futs := make([]jetstream.PubAckFuture, len(built))
	var errs []error
	for i, nm := range built {
		f, err := b.js.PublishMsgAsync(nm)
		if err != nil {
			errs = append(errs, fmt.Errorf("message %d: %w", i, engine.Classify(err)))
			break
		}
		futs[i] = f
	}
	var stored int64
	for i, f := range futs {
		if f == nil {
			continue
		}
		select {
		case ack := <-f.Ok():
			if !ack.Duplicate {
				stored++
			}
		case err := <-f.Err():
			errs = append(errs, fmt.Errorf("message %d: %w", i, engine.Classify(err)))
		case <-ctx.Done():
			errs = append(errs, engine.Classify(ctx.Err()))
		}
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) > 0 {
		return stored, fmt.Errorf("queue %q: publish batch (%d of %d stored): %w", q.n.queue, stored, len(built), errors.Join(errs...))
	}
	return stored, nil
}

func (b *Broker) published(q *qstate, n int64) {
	q.published.Add(n)
	q.sizeMu.Lock()
	q.size += n
	q.sizeMu.Unlock()
	q.m.published.Add(float64(n))
}

// Future is the result of PublishAsync.
type Future struct {
	id   string
	paf  jetstream.PubAckFuture
	err  error
	done bool
	q    *qstate
	b    *Broker
}

// ID is the message's id, known before the engine answers.
func (f *Future) ID() string { return f.id }

// Wait returns when the engine has stored the message (nil) or refused it.
func (f *Future) Wait(ctx context.Context) error {
	if f.done || f.err != nil {
		return f.err
	}
	select {
	case ack := <-f.paf.Ok():
		if !ack.Duplicate {
			f.b.published(f.q, 1)
		}
		f.done = true
		return nil
	case err := <-f.paf.Err():
		f.done = true
		f.err = fmt.Errorf("queue %q: publish: %w", f.q.n.queue, engine.Classify(err))
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// PublishAsync sends one message without waiting for the engine; Wait on
// the future to learn whether it was stored. Wait is not safe for
// concurrent use on one future; trace context is taken from ctx.
func (b *Broker) PublishAsync(ctx context.Context, queue string, m Message) *Future {
	q, err := b.state(ctx, queue)
	if err == nil {
		err = m.Validate()
	}
	if err == nil {
		err = b.opts.Writable()
	}
	if err == nil {
		err = b.addLevel(ctx, q, m.Priority)
	}
	release := func() {}
	if err == nil {
		release, err = b.reserve(ctx, q, 1)
	}
	if err != nil {
		return &Future{err: err}
	}
	defer release()
	nm := b.build(ctx, q, &m, b.opts.Clock.Now())
	f := &Future{id: nm.Header[hdrID][0], q: q, b: b}
	if f.err = engine.CheckMsg(b.nc, nm); f.err != nil {
		f.err = fmt.Errorf("queue %q: %w", q.n.queue, f.err)
		return f
	}
	f.paf, f.err = b.js.PublishMsgAsync(nm)
	return f
}
