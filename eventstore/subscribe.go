package eventstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/telemetry"
)

// Handler handles one event. Its ctx carries the trace context the event
// was appended with, and ends when the subscription stops.
type Handler func(ctx context.Context, e Envelope) error

// SubscribeOptions tune a subscription. The zero value receives every
// event from the beginning.
type SubscribeOptions struct {
	// Types keeps only these event types (all when empty).
	Types []string
	// Category keeps only streams of this category (all when empty).
	Category string
	// FromPosition is where a new group starts (default 1, everything). A
	// group that exists continues from its checkpoint.
	FromPosition uint64
	// MaxAttempts runs of the handler before an event is parked. Default 5.
	MaxAttempts int
	// Backoff is the first retry delay; it doubles up to MaxBackoff.
	// Defaults 100ms and 10s.
	Backoff, MaxBackoff time.Duration
	// AckWait is how long the engine waits for a checkpoint before it
	// delivers an event again (when the process died). Default 60s.
	AckWait time.Duration
	// Buffer is how many appends (engine messages) are fetched ahead,
	// within a byte bound of the engine's largest message. Default 256.
	Buffer int
}

func (o *SubscribeOptions) defaults() error {
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.Backoff <= 0 {
		o.Backoff = 100 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 10 * time.Second
	}
	if o.AckWait <= 0 {
		o.AckWait = 60 * time.Second
	}
	if o.Buffer <= 0 {
		o.Buffer = 256
	}
	q := Query{Types: o.Types, Category: o.Category}
	return q.Validate()
}

// ConsumerName is the durable consumer of a subscriber group.
func ConsumerName(group string) string { return "plexus-events-" + group }

// Subscription delivers a group's events to its handler, one at a time in
// global order. A checkpoint (the consumer's acknowledgement floor) is
// written after each event is handled or parked.
type Subscription struct {
	store   *Store
	group   string
	opts    SubscribeOptions
	handler Handler
	cons    jetstream.Consumer
	types   typeSet // the events of a mixed append the group takes
	dec     decoder // of the run loop

	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	handleMu sync.Mutex // one handler run at a time, parked retries included
	last     atomic.Uint64
	stopOnce sync.Once
}

// Subscribe starts delivering the group's events to h: first those after
// the group's checkpoint (or from opts.FromPosition for a new group), then
// new ones as they are appended. Every group gets every matching event;
// groups are independent. One running subscription per group keeps the
// order; more share the work.
func (s *Store) Subscribe(ctx context.Context, group string, h Handler, opts SubscribeOptions) (*Subscription, error) {
	if !ValidGroup(group) {
		return nil, invalidf("group %q: want 1-64 of [a-zA-Z0-9_-]", group)
	}
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	cons, err := s.ensureConsumer(ctx, group, opts)
	if err != nil {
		return nil, err
	}
	s.metrics.initGroup(group)
	// Deliver again from the checkpoint: whatever an earlier process had
	// fetched but not handled comes first, in order, not after AckWait.
	if _, err := s.js.ResetConsumer(ctx, engine.StreamEvents, ConsumerName(group)); err != nil {
		s.log.Warn("events: could not reset the group to its checkpoint", "group", group, "err", err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("eventstore: group %q: %w", group, err)
	}
	sub := &Subscription{store: s, group: group, opts: opts, handler: h, cons: cons, types: typeSet(opts.Types),
		dec: decoder{l: s.layout()}}
	sub.last.Store(max(s.layout().lastPos(info.AckFloor.Stream), startOf(info.Config)-1))
	sub.ctx, sub.cancel = context.WithCancel(context.Background())
	it, err := cons.Messages(jetstream.PullMaxMessagesWithBytesLimit(opts.Buffer, s.pullBytes()))
	if err != nil {
		return nil, fmt.Errorf("eventstore: group %q: %w", group, err)
	}
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		it.Stop()
		return nil, ErrStopped
	}
	s.subs[sub] = struct{}{}
	s.mu.Unlock()
	sub.wg.Add(2)
	go sub.run(it)
	go sub.watchParked()
	return sub, nil
}

func (s *Store) ensureConsumer(ctx context.Context, group string, opts SubscribeOptions) (jetstream.Consumer, error) {
	name := ConsumerName(group)
	filters := filterSubjects(opts.Category, opts.Types)
	cfg := jetstream.ConsumerConfig{
		Durable: name, Description: "Plexus subscriber group " + group,
		AckPolicy: jetstream.AckAllPolicy, AckWait: opts.AckWait, MaxDeliver: -1,
		MaxAckPending: max(1000, 2*opts.Buffer), DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if len(filters) == 1 {
		cfg.FilterSubject = filters[0]
	} else {
		cfg.FilterSubjects = filters
	}
	if old, err := s.js.Consumer(ctx, engine.StreamEvents, name); err == nil {
		// Keep where the group started; filters and timings may change.
		oc := old.CachedInfo().Config
		cfg.DeliverPolicy, cfg.OptStartSeq, cfg.Metadata = oc.DeliverPolicy, oc.OptStartSeq, oc.Metadata
		c, err := s.js.UpdateConsumer(ctx, engine.StreamEvents, cfg)
		if errors.Is(err, jetstream.ErrConsumerMultipleFilterSubjectsNotSupported) {
			// nats-server answers the first update of a consumer it
			// recovered from disk with the consumer as it was recovered
			// (its filter, not the new filters); the update itself is
			// applied. Read it back.
			c, err = s.js.Consumer(ctx, engine.StreamEvents, name)
			if err == nil && !slices.Equal(c.CachedInfo().Config.FilterSubjects, cfg.FilterSubjects) {
				err = fmt.Errorf("the engine did not take the filters %v", cfg.FilterSubjects)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("eventstore: group %q: %w", group, err)
		}
		return c, nil
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("eventstore: group %q: %w", group, err)
	}
	if opts.FromPosition > 1 {
		// The engine starts at the message; the position within it is
		// kept with the consumer for the subscription to skip to.
		seq, _ := s.layout().at(opts.FromPosition)
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, seq
		cfg.Metadata = map[string]string{metaFromPosition: strconv.FormatUint(opts.FromPosition, 10)}
	}
	c, err := s.js.CreateOrUpdateConsumer(ctx, engine.StreamEvents, cfg)
	if err != nil {
		return nil, fmt.Errorf("eventstore: group %q: %w", group, err)
	}
	return c, nil
}

// metaFromPosition is the consumer metadata key of a group's first
// position.
const metaFromPosition = "plexus.from-position"

// startOf is the first position of a group's consumer: where it was told
// to start, or 1.
func startOf(cfg jetstream.ConsumerConfig) uint64 {
	if p, err := strconv.ParseUint(cfg.Metadata[metaFromPosition], 10, 64); err == nil && p > 0 {
		return p
	}
	return 1
}

// Group names the subscriber group.
func (sub *Subscription) Group() string { return sub.group }

// Position is the position of the last event handled or parked: the
// group's checkpoint as this process knows it.
func (sub *Subscription) Position() uint64 { return sub.last.Load() }

// Stop ends the subscription: the running handler finishes (its ctx ends),
// checkpoints are flushed, and events fetched but not handled are left
// for the next subscriber of the group. Bounded by ctx.
func (sub *Subscription) Stop(ctx context.Context) error {
	sub.stopOnce.Do(sub.cancel)
	done := make(chan struct{})
	go func() { sub.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
		err = sub.store.nc.FlushWithContext(ctx)
	case <-ctx.Done():
		err = fmt.Errorf("eventstore: stop group %q: %w", sub.group, ctx.Err())
	}
	sub.store.mu.Lock()
	delete(sub.store.subs, sub)
	sub.store.mu.Unlock()
	return err
}

// Checkpoints are coalesced: with AckAll, acknowledging an append's
// message acknowledges every earlier one, so the loop acknowledges once
// ackEvery events are handled (at the end of the append that reaches it),
// when nothing arrives for ackIdle, and when it stops.
const (
	ackEvery = 64
	ackIdle  = 20 * time.Millisecond
)

func (sub *Subscription) run(it jetstream.MessagesContext) {
	defer sub.wg.Done()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-sub.ctx.Done()
		it.Stop()
	}()
	var unacked jetstream.Msg
	var n int
	checkpoint := func() {
		if unacked != nil {
			_ = unacked.Ack()
			unacked, n = nil, 0
		}
	}
	defer func() { checkpoint(); sub.stopOnce.Do(sub.cancel); <-stopped }()
	for {
		var msg jetstream.Msg
		var err error
		if unacked != nil {
			msg, err = it.Next(jetstream.NextMaxWait(ackIdle))
			if errors.Is(err, nats.ErrTimeout) {
				checkpoint()
				continue
			}
		} else {
			msg, err = it.Next()
		}
		if err != nil {
			if sub.ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			sub.store.log.Warn("events: subscription", "group", sub.group, "err", err)
			continue
		}
		switch out, k := sub.handleMsg(msg); out {
		case msgStop:
			return
		case msgDone:
			unacked, n = msg, n+max(k, 1)
			if n >= ackEvery {
				checkpoint()
			}
		}
	}
}

type msgOutcome int

const (
	msgDone msgOutcome = iota // handled or parked: checkpoint it
	msgSkip                   // already settled
	msgStop                   // the subscription is stopping; left for later
)

// errStopping ends a message's events when the subscription stops.
var errStopping = errors.New("eventstore: subscription stopping")

// handleMsg runs the handler on each event of an append, in order, with
// retries, parking an event when they are exhausted. Events handled before
// (a message delivered again) are skipped. It returns how many events it
// settled.
func (sub *Subscription) handleMsg(msg jetstream.Msg) (msgOutcome, int) {
	md, err := msg.Metadata()
	if err != nil {
		sub.store.log.Error("events: message without metadata", "group", sub.group, "err", err)
		return msgSkip, 0
	}
	l := sub.store.layout()
	seq := md.Sequence.Stream
	if l.lastPos(seq) <= sub.last.Load() {
		_ = msg.Ack() // delivered again after it was handled: everything up to it is
		return msgSkip, 0
	}
	m := message{subject: msg.Subject(), seq: seq, time: md.Timestamp, header: msg.Headers(), data: msg.Data()}
	n := 0
	err = sub.dec.events(m, func(e *storedEvent) error {
		if e.Position <= sub.last.Load() {
			return nil
		}
		if sub.types.has(e.Type) {
			if !sub.handleEvent(msg, e) {
				return errStopping
			}
			n++
		}
		sub.last.Store(e.Position)
		return nil
	})
	switch {
	case errors.Is(err, errStopping):
		return msgStop, n
	case err != nil:
		sub.store.log.Error("events: undecodable append skipped", "group", sub.group, "sequence", seq, "err", err)
	}
	sub.last.Store(max(sub.last.Load(), l.pos(seq, 0)))
	return msgDone, n
}

// handleEvent runs the handler on one event until it succeeds or the
// event is parked; false when the subscription stops first.
func (sub *Subscription) handleEvent(msg jetstream.Msg, e *storedEvent) bool {
	delay := sub.opts.Backoff
	for attempt := 1; ; attempt++ {
		err := sub.call(e)
		if err == nil {
			sub.store.metrics.handledOne(sub.group, "ok")
			return true
		}
		if sub.ctx.Err() != nil {
			return false
		}
		if attempt >= sub.opts.MaxAttempts {
			if perr := sub.park(e.Envelope, attempt, err); perr != nil {
				sub.store.log.Error("events: could not park event; will retry", "group", sub.group, "position", e.Position, "err", perr)
				attempt--
			} else {
				sub.store.metrics.handledOne(sub.group, "parked")
				return true
			}
		} else {
			sub.store.metrics.handledOne(sub.group, "retry")
		}
		_ = msg.InProgress()
		select {
		case <-time.After(delay):
		case <-sub.ctx.Done():
			return false
		}
		delay = min(2*delay, sub.opts.MaxBackoff)
	}
}

// call runs the handler once, in the event's trace, turning a panic into
// an error.
func (sub *Subscription) call(e *storedEvent) (err error) {
	sub.handleMu.Lock()
	defer sub.handleMu.Unlock()
	env := e.Envelope
	ctx := telemetry.WithTrace(sub.ctx, e.trace)
	ctx, span := sub.store.tracer.Start(ctx, "eventstore.handle", trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("plexus.group", sub.group), attribute.String("plexus.event.type", env.Type),
			attribute.Int64("plexus.position", int64(env.Position)), attribute.String("plexus.event.id", env.ID),
			attribute.String("plexus.event.correlation_id", env.CorrelationID),
			attribute.String("plexus.event.causation_id", env.CausationID)))
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("handler panic: %v", v)
		}
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}()
	return sub.handler(withEventIDs(ctx, env), env)
}
