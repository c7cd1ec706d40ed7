package queue

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nuid"
	"go.opentelemetry.io/otel/trace"

	"github.com/plexushq/plexus/telemetry"
)

// Handler processes one delivery. Returning nil acknowledges it; an error
// (or a panic) nacks it with the error text, so it is retried per the
// queue's policy or dead-lettered after its last attempt. ctx carries the
// producer's trace context and ends when the subscription is stopped hard.
type Handler func(ctx context.Context, d *Delivery) error

// SubscribeOptions tune a subscription. The zero value works.
type SubscribeOptions struct {
	// Concurrency is how many handlers run at once. Default 1.
	Concurrency int
	// Prefetch is how many messages are fetched per request; the ones not
	// yet handled stay invisible to other consumers (and are kept visible
	// to no one by extension). Default max(Concurrency, 16).
	Prefetch int
	// Name identifies the consumer in the statistics. Optional.
	Name string
}

// Subscription is a running Subscribe; Stop ends it.
type Subscription struct {
	b      *Broker
	q      *qstate
	h      Handler
	opts   SubscribeOptions
	work   chan *Delivery
	stop   chan struct{}
	hard   context.CancelFunc
	fetchW sync.WaitGroup
	workW  sync.WaitGroup
	once   sync.Once

	workersLeft atomic.Int32
	workersDone chan struct{} // closed when the last worker ends

	heldMu sync.Mutex
	held   map[*Delivery]struct{} // fetched and not finished: extended while held
	id     string                 // names the held count in the delivery ledger
}

// Subscribe runs handler for the queue's messages until Stop or until ctx
// ends (then it stops fetching and ends once running handlers return; Stop
// still waits for that and updates the consumer count).
// Messages are acked on success and nacked on error or panic; while a
// message is held its visibility timeout is extended.
func (b *Broker) Subscribe(ctx context.Context, queue string, handler Handler, opts SubscribeOptions) (*Subscription, error) {
	q, err := b.state(ctx, queue)
	if err != nil {
		return nil, err
	}
	if handler == nil {
		return nil, errors.New("queue: nil handler")
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 1
	}
	if opts.Prefetch <= 0 {
		opts.Prefetch = max(opts.Concurrency, 16)
	}
	hctx, hard := context.WithCancel(context.WithoutCancel(ctx))
	s := &Subscription{
		b: b, q: q, h: handler, opts: opts, hard: hard,
		work: make(chan *Delivery), stop: make(chan struct{}),
		held:        make(map[*Delivery]struct{}, opts.Prefetch),
		workersDone: make(chan struct{}),
		id:          nuid.Next(),
	}
	s.workersLeft.Store(int32(opts.Concurrency))
	q.consumersActive.Add(1)
	q.consumersTotal.Add(1)
	s.workW.Add(opts.Concurrency)
	for range opts.Concurrency {
		go s.worker(hctx)
	}
	s.fetchW.Add(2)
	go s.fetch(ctx)
	go s.extend()
	return s, nil
}

// fetch takes messages and hands them to the workers until stopped.
func (s *Subscription) fetch(ctx context.Context) {
	defer s.fetchW.Done()
	defer close(s.work)
	for {
		select {
		case <-s.stop:
			return
		case <-ctx.Done():
			return
		default:
		}
		ds, err := s.b.receive(ctx, s.q, s.opts.Prefetch, time.Second, s.stop)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, ErrClosed) {
				s.b.log.Warn("queue receive failed", "queue", s.q.n.queue, "err", err)
				select {
				case <-time.After(s.b.opts.PollInterval):
				case <-s.stop:
				}
			}
			continue
		}
		s.hold(ds)
		for i, d := range ds {
			select {
			case s.work <- d:
			case <-s.stop:
				// Not started: give them back at once rather than after the timeout.
				for _, r := range ds[i:] {
					s.release(r)
					_ = s.b.nakAfter(r.msg.Reply, 0)
				}
				return
			}
		}
	}
}

func (s *Subscription) hold(ds []*Delivery) {
	s.heldMu.Lock()
	for _, d := range ds {
		s.held[d] = struct{}{}
	}
	n := len(s.held)
	s.heldMu.Unlock()
	if len(ds) > 0 {
		s.report(n)
	}
}

// report tells the delivery ledger how many messages this subscription
// holds (the queue's inFlight), for a little longer than the next report.
func (s *Subscription) report(held int) {
	vt := s.q.cfg.Load().VisibilityTimeout
	s.b.reportHeld(s.q.n, s.id, held, vt+time.Second)
}

func (s *Subscription) release(d *Delivery) {
	s.heldMu.Lock()
	delete(s.held, d)
	s.heldMu.Unlock()
}

// extend restarts the visibility timeout of held messages every third of it.
func (s *Subscription) extend() {
	defer s.fetchW.Done()
	every := s.q.cfg.Load().VisibilityTimeout / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-s.workersDone: // ctx ended and every handler returned
			return
		case <-t.C:
		}
		s.heldMu.Lock()
		for d := range s.held {
			_ = s.b.nc.Publish(d.msg.Reply, progressBody)
		}
		n := len(s.held)
		s.heldMu.Unlock()
		s.report(n)
	}
}

func (s *Subscription) worker(ctx context.Context) {
	defer s.workW.Done()
	defer func() {
		if s.workersLeft.Add(-1) == 0 {
			close(s.workersDone)
		}
	}()
	for d := range s.work {
		s.handle(ctx, d)
		s.release(d)
	}
}

func (s *Subscription) handle(ctx context.Context, d *Delivery) {
	c, q := s.b, s.q
	// The handler runs in the producer's trace (its span is the parent) and
	// the consumer span also links to it, as OpenTelemetry's messaging
	// conventions suggest.
	pctx := telemetry.ExtractHeader(ctx, d.header)
	ctx, span := c.startSpan(pctx, "process", q.n.queue, trace.SpanKindConsumer,
		trace.WithLinks(trace.LinkFromContext(pctx)))
	err := s.call(ctx, d)
	if err == nil {
		if aerr := c.nc.Publish(d.msg.Reply, ackBody); aerr != nil {
			c.log.Warn("queue ack failed", "queue", q.n.queue, "id", d.ID, "err", aerr)
		} else {
			c.processed(q, 1)
		}
	} else {
		ref := ackRef{reply: d.msg.Reply, delivered: d.Attempts, priority: d.Priority}
		if md, ok := parseAck(d.msg.Reply); ok {
			ref.seq = md.seq
		}
		if nerr := c.nack(context.WithoutCancel(ctx), q, ref, d.msg, err.Error(), 0); nerr != nil {
			c.log.Warn("queue nack failed", "queue", q.n.queue, "id", d.ID, "err", nerr)
		}
	}
	endSpan(span, err)
}

func (s *Subscription) call(ctx context.Context, d *Delivery) (err error) {
	defer func() {
		if v := recover(); v != nil {
			s.b.log.Error("queue handler panicked", "queue", s.q.n.queue, "id", d.ID, "panic", v, "stack", string(debug.Stack()))
			err = fmt.Errorf("panic: %v", v)
		}
	}()
	return s.h(ctx, d)
}

// Stop stops fetching, lets running handlers finish and returns. When ctx
// ends first, handlers' contexts are cancelled and Stop returns ctx's
// error; their messages are redelivered after the visibility timeout.
func (s *Subscription) Stop(ctx context.Context) error {
	s.once.Do(func() {
		close(s.stop)
		s.q.consumersActive.Add(-1)
	})
	done := make(chan struct{})
	go func() {
		s.fetchW.Wait()
		s.workW.Wait()
		s.b.reportHeld(s.q.n, s.id, 0, time.Second)
		close(done)
	}()
	select {
	case <-done:
		s.hard()
		return nil
	case <-ctx.Done():
		// Handlers that ignore their cancelled context finish on their own;
		// their messages come back after the visibility timeout.
		s.hard()
		return ctx.Err()
	}
}
