package eventstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/plexushq/plexus/engine"
)

// Flow control and clean-up of a tail's server-side consumer.
const (
	// TailBuffer is the most appends (engine messages) a tail (a Tail
	// call, an SSE subscriber) holds on the node ahead of its reader, within
	// a byte bound of the engine's largest message; the engine sends more
	// only as the reader takes them, so a storm of catching-up subscribers
	// cannot exhaust the node.
	TailBuffer = 32
	// tailInactive is how long the engine keeps a tail's consumer once
	// nobody pulls from it: a tail removes its consumer when it ends, and
	// this bounds the leftovers of a node that died.
	tailInactive = 10 * time.Second
	// tailResumes bounds the consecutive attempts to resume a tail whose
	// consumer was lost (engine restart, missed heartbeats) without
	// delivering anything in between.
	tailResumes = 3
)

// errScanDone ends a bounded read at its end.
var errScanDone = errors.New("eventstore: scan done")

// errTailGap: events were lost between the engine and this client; the
// tail resumes after the last one it delivered.
var errTailGap = errors.New("eventstore: tail: missed events in transit")

// Tail calls fn with every event matching q (Limit is ignored), first the
// stored ones from q.FromPosition (or q.Since), then new ones as they are
// appended, in global order, until ctx ends (nil) or fn fails (its error).
// It keeps no checkpoint: it is for live views, SSE and rebuilding
// in-memory read models; use Subscribe for durable work.
func (s *Store) Tail(ctx context.Context, q Query, fn func(Envelope) error) error {
	return s.tail(ctx, q, tailOpts{}, fn)
}

// tailOpts are the SSE subscriber's and Scan's extras.
type tailOpts struct {
	// end makes a bounded read (Scan): it stops after the message at this
	// sequence, or once no matching message is left.
	end uint64
	// buffer is how many messages the engine may send ahead. Default
	// TailBuffer.
	buffer int
	// ready is called once the engine delivers to the tail (so an OnlyNew
	// reader misses nothing appended after it).
	ready func()
	// setup bounds the creation of the first consumer (the request
	// deadline of an SSE subscription). Default: the store's RequestTimeout.
	setup time.Duration
}

// tailState is where a tail is: what it delivered last, so that a lost
// consumer is replaced from there.
type tailState struct {
	q        Query
	layout   layout
	last     uint64 // position of the last event handed to fn
	from     uint64 // first position of an OnlyNew tail, known once created
	started  bool
	progress bool // delivered something since the last (re)start
}

// tail is Tail with the SSE subscriber's extras. It uses a plain pull
// consumer of its own (no acks, memory storage, a short inactivity
// threshold), bounded in what it buffers, removed when the tail ends, and
// replaced from the last delivered position when it is lost on the way.
func (s *Store) tail(ctx context.Context, q Query, o tailOpts, fn func(Envelope) error) error {
	q.Limit = 0
	if err := q.Validate(); err != nil {
		return err
	}
	st := &tailState{q: q, layout: s.layout()}
	for fails := 0; ; {
		err := s.tailOnce(ctx, st, o, fn)
		var fe fnError
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.As(err, &fe):
			return fe.err
		case errors.Is(err, errScanDone):
			return nil
		case !st.started:
			return err // the first consumer could not be made: say so now
		}
		if st.progress {
			fails = 0
		}
		if fails++; fails > tailResumes {
			return err
		}
		s.log.Debug("events: resuming a tail", "after", st.last, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Duration(fails) * 250 * time.Millisecond):
		}
	}
}

// tailOnce runs one consumer until it fails, fn fails or ctx ends.
func (s *Store) tailOnce(ctx context.Context, st *tailState, o tailOpts, fn func(Envelope) error) error {
	setup := o.setup
	if setup <= 0 {
		setup = s.cfg.RequestTimeout
	}
	cctx, cancel := context.WithTimeout(ctx, setup)
	cons, err := s.js.CreateConsumer(cctx, engine.StreamEvents, st.consumerConfig())
	cancel()
	if err != nil {
		return fmt.Errorf("eventstore: tail: %w", engine.Classify(err))
	}
	name := cons.CachedInfo().Name
	defer s.deleteConsumer(name)
	if !st.started && st.q.OnlyNew {
		st.from = cons.CachedInfo().Delivered.Stream + 1
	}
	if o.end > 0 && cons.CachedInfo().NumPending == 0 {
		return errScanDone
	}
	buffer := o.buffer
	if buffer <= 0 {
		buffer = TailBuffer
	}
	it, err := cons.Messages(jetstream.PullMaxMessagesWithBytesLimit(buffer, s.pullBytes()))
	if err != nil {
		return fmt.Errorf("eventstore: tail: %w", err)
	}
	if !st.started && o.ready != nil {
		o.ready()
	}
	st.started, st.progress = true, false
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
		case <-done:
		}
		it.Stop()
	}()
	defer func() { close(done); wg.Wait() }()
	return s.consumeTail(it, st, o.end, fn)
}

func (s *Store) consumeTail(it jetstream.MessagesContext, st *tailState, end uint64, fn func(Envelope) error) error {
	d := &decoder{l: s.layout()}
	types := typeSet(st.q.Types)
	var seq uint64 // consumer sequence: one more per delivery, or events went missing
	for {
		msg, err := it.Next()
		if err != nil {
			return fmt.Errorf("eventstore: tail: %w", engine.Classify(err))
		}
		md, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("eventstore: tail: %w", err)
		}
		if md.Sequence.Consumer != seq+1 {
			return fmt.Errorf("%w: consumer sequence %d after %d", errTailGap, md.Sequence.Consumer, seq)
		}
		seq = md.Sequence.Consumer
		if !st.q.Since.IsZero() && md.Timestamp.Before(st.q.Since) {
			if end > 0 && (md.NumPending == 0 || md.Sequence.Stream >= end) {
				return errScanDone
			}
			continue
		}
		m := message{subject: msg.Subject(), seq: md.Sequence.Stream, time: md.Timestamp, header: msg.Headers(), data: msg.Data()}
		err = d.events(m, func(e *storedEvent) error {
			if e.Position <= st.last || e.Position < st.q.FromPosition || !types.has(e.Type) {
				return nil
			}
			if err := fn(e.Envelope); err != nil {
				return err
			}
			st.last, st.progress = e.Position, true
			return nil
		})
		if err != nil {
			return fnError{err}
		}
		if end > 0 && (md.NumPending == 0 || md.Sequence.Stream >= end) {
			return errScanDone
		}
	}
}

// consumerConfig starts where the tail is: after the last delivered event,
// else where the query says.
func (st *tailState) consumerConfig() jetstream.ConsumerConfig {
	cfg := jetstream.ConsumerConfig{
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: tailInactive,
		MemoryStorage:     true,
		Replicas:          1,
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       st.startSeq(),
	}
	if subj := filterSubjects(st.q.Category, st.q.Types); len(subj) == 1 {
		cfg.FilterSubject = subj[0]
	} else {
		cfg.FilterSubjects = subj
	}
	switch {
	case st.last > 0:
		cfg.OptStartSeq, _ = st.layout.at(st.last + 1)
	case st.q.OnlyNew && st.from > 0:
		cfg.OptStartSeq = st.from
	case st.q.OnlyNew:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverNewPolicy, 0
	case !st.q.Since.IsZero() && st.q.FromPosition <= 1:
		since := st.q.Since
		cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, 0, &since
	}
	return cfg
}

// startSeq is the sequence of the message holding q.FromPosition.
func (st *tailState) startSeq() uint64 {
	seq, _ := st.layout.at(max(st.q.FromPosition, 1))
	return seq
}

// deleteConsumer removes a tail's consumer at once (the engine would keep
// it until its inactivity threshold).
func (s *Store) deleteConsumer(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	defer cancel()
	err := s.js.DeleteConsumer(ctx, engine.StreamEvents, name)
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		s.log.Debug("events: removing a tail's consumer", "consumer", name, "err", err)
	}
}
