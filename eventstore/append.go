package eventstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/plexushq/plexus/engine"
)

// AppendResult says where an append's events landed.
type AppendResult struct {
	// Version is the stream's version after the append (its last event's).
	Version int64 `json:"version"`
	// Position is the global position of the last event appended.
	Position uint64 `json:"position"`
	// FirstPosition is the global position of the first event appended;
	// the events occupy FirstPosition..Position without gaps.
	FirstPosition uint64 `json:"-"`
	// IDs are the events' ids, in order.
	IDs []string `json:"-"`
	// Duplicate is true when a writer-supplied id matched an event
	// already stored; nothing new was stored.
	Duplicate bool `json:"-"`
}

// Engine error codes the append path understands, as nats.go and
// nats-server export them.
const (
	errCodeWrongLastSeq      = jetstream.JSErrCodeStreamWrongLastSequence
	errCodeWrongLastSeqConst = jetstream.JSErrCodeStreamWrongLastSequenceConstant
	errCodeBatchDuplicate    = jetstream.ErrorCode(server.JSAtomicPublishContainsDuplicateMessageErr)
	errCodeBatchInflight     = jetstream.ErrorCode(server.JSAtomicPublishTooManyInflight)
)

// maxAnyRetries bounds the retries of an AnyVersion append that keeps
// losing races.
const maxAnyRetries = 16

type pubAck struct {
	Stream    string              `json:"stream"`
	Seq       uint64              `json:"seq"`
	Duplicate bool                `json:"duplicate,omitempty"`
	Error     *jetstream.APIError `json:"error,omitempty"`
}

// Append stores events at the end of stream, atomically: all or none. The
// stream's version must be expected (AnyVersion: whatever it is; NoStream:
// no events yet; N: exactly N), else a *ConflictError carries the current
// version. At most MaxBatch events per call.
func (s *Store) Append(ctx context.Context, stream string, expected int64, events ...Event) (AppendResult, error) {
	start := time.Now()
	ctx, span := s.tracer.Start(ctx, "eventstore.append", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("plexus.stream", stream), attribute.Int("plexus.events", len(events))))
	defer span.End()
	res, err := s.appendEvents(ctx, stream, expected, events)
	s.metrics.appended(len(events), err, time.Since(start))
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	return res, err
}

func (s *Store) appendEvents(ctx context.Context, stream string, expected int64, in []Event) (AppendResult, error) {
	if !ValidStreamName(stream) {
		return AppendResult{}, invalidf("stream %q: want 1-128 of [a-zA-Z0-9._-] starting with a letter or digit", stream)
	}
	if expected < AnyVersion {
		return AppendResult{}, invalidf("expectedVersion %d: want -1 (any), 0 (no stream) or a version", expected)
	}
	if len(in) == 0 || len(in) > MaxBatch {
		return AppendResult{}, invalidf("%d events: want 1 to %d", len(in), MaxBatch)
	}
	events, err := s.prepare(ctx, stream, in)
	if err != nil {
		return AppendResult{}, err
	}
	if err := s.eng.Writable(); err != nil {
		return AppendResult{}, fmt.Errorf("eventstore: append to %q: %w", stream, err)
	}
	// The reads and the publish below each get the store's deadline when
	// ctx has none.
	for attempt := 0; ; attempt++ {
		cur, err := s.base(ctx, stream, expected)
		if err != nil {
			return AppendResult{}, err
		}
		msgs := buildMsgs(ctx, stream, cur, events)
		ack, err := s.publish(ctx, msgs)
		if err != nil {
			return AppendResult{}, err
		}
		if ack.Error != nil {
			switch ack.Error.ErrorCode {
			case errCodeWrongLastSeq, errCodeWrongLastSeqConst:
				s.versions.drop(stream)
				if expected == AnyVersion && attempt < maxAnyRetries {
					continue
				}
				return AppendResult{}, s.conflict(ctx, stream, expected)
			case errCodeBatchDuplicate:
				return AppendResult{}, invalidf("stream %q: an event id of this batch was already stored", stream)
			case errCodeBatchInflight:
				return AppendResult{}, fmt.Errorf("%w: stream %q: too many batches in flight", ErrBusy, stream)
			}
			return AppendResult{}, fmt.Errorf("eventstore: append to %q: %w", stream, engine.Classify(ack.Error))
		}
		if ack.Duplicate {
			return s.duplicate(ctx, stream, ack.Seq, events)
		}
		n := int64(len(events))
		s.versions.put(stream, verPos{cur.version + n, ack.Seq})
		res := AppendResult{Version: cur.version + n, Position: ack.Seq, FirstPosition: ack.Seq - uint64(n) + 1,
			IDs: make([]string, len(events))}
		for i := range events {
			res.IDs[i] = events[i].ID
		}
		return res, nil
	}
}

// prepare copies the events, runs the middlewares, validates and fills in
// the defaults.
func (s *Store) prepare(ctx context.Context, stream string, in []Event) ([]Event, error) {
	events := make([]Event, len(in))
	copy(events, in)
	mws := *s.mws.Load()
	corr, causedBy := EventIDs(ctx)
	for i := range events {
		e := &events[i]
		for _, mw := range mws {
			if err := mw(ctx, stream, e); err != nil {
				if errors.Is(err, ErrInvalid) || errors.Is(err, ErrRejected) {
					return nil, err
				}
				return nil, rejectedf("event %d (%s): %v", i, e.Type, err)
			}
		}
		if err := e.Validate(); err != nil {
			return nil, err
		}
		if e.Source == "" {
			e.Source = DefaultSource
		}
		if e.CorrelationID == "" {
			e.CorrelationID = corr
		}
		if e.CorrelationID == "" {
			e.CorrelationID = nuid.Next()
		}
		if e.CausationID == "" {
			e.CausationID = causedBy
		}
	}
	seen := make(map[string]struct{}, len(events))
	for i := range events {
		e := &events[i]
		if e.ID == "" {
			e.ID, e.generatedID = nuid.Next(), true
			continue
		}
		if _, dup := seen[e.ID]; dup {
			return nil, invalidf("event id %q appears twice in one append", e.ID)
		}
		seen[e.ID] = struct{}{}
	}
	return events, nil
}

// base is the version and position the append builds on: from the cache
// when it can be trusted, else read from the engine.
func (s *Store) base(ctx context.Context, stream string, expected int64) (verPos, error) {
	if expected == NoStream {
		return verPos{}, nil
	}
	if v, ok := s.versions.get(stream); ok && (expected == AnyVersion || v.version == expected) {
		return v, nil
	}
	rctx, cancel := s.withTimeout(ctx)
	defer cancel()
	v, err := s.last(rctx, stream)
	if err != nil {
		return verPos{}, err
	}
	if expected != AnyVersion && v.version != expected {
		return verPos{}, &ConflictError{Stream: stream, Expected: expected, Current: v.version}
	}
	return v, nil
}

func (s *Store) conflict(ctx context.Context, stream string, expected int64) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	v, err := s.last(ctx, stream)
	if err != nil {
		return err
	}
	return &ConflictError{Stream: stream, Expected: expected, Current: v.version}
}

// duplicate answers a retried append whose writer-supplied id was stored.
func (s *Store) duplicate(ctx context.Context, stream string, seq uint64, events []Event) (AppendResult, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	m, err := s.getOne(ctx, getRequest{Seq: seq})
	if err != nil {
		return AppendResult{}, err
	}
	if m == nil {
		return AppendResult{}, fmt.Errorf("eventstore: duplicate of event %d that cannot be read", seq)
	}
	env, err := envelopeFromDirect(m)
	if err != nil {
		return AppendResult{}, err
	}
	if env.Stream != stream {
		return AppendResult{}, invalidf("event id %q is already used in stream %q", events[0].ID, env.Stream)
	}
	return AppendResult{Version: env.Version, Position: seq, FirstPosition: seq, IDs: []string{env.ID}, Duplicate: true}, nil
}

// buildMsgs makes one message per event; the first carries the expected
// last position of the stream, and more than one form an atomic batch.
func buildMsgs(ctx context.Context, stream string, cur verPos, events []Event) []*nats.Msg {
	prefix := streamPrefix(stream)
	msgs := make([]*nats.Msg, len(events))
	var batchID string
	if len(events) > 1 {
		batchID = nuid.Next()
	}
	for i := range events {
		e := &events[i]
		h := make(nats.Header, 12)
		h[hdrID] = []string{e.ID}
		h[hdrVersion] = []string{strconv.FormatInt(cur.version+int64(i)+1, 10)}
		h[hdrSource] = []string{e.Source}
		h[hdrCorrelation] = []string{e.CorrelationID}
		if e.CausationID != "" {
			h[hdrCausation] = []string{e.CausationID}
		}
		if len(e.Metadata) > 0 {
			h[hdrMetadata] = []string{string(e.Metadata)}
		}
		injectTrace(ctx, h)
		if i == 0 {
			h[hdrExpSubjSeq] = []string{strconv.FormatUint(cur.seq, 10)}
			h[hdrExpSubjSeqSub] = []string{prefix + "*"}
		}
		if batchID != "" {
			h[hdrBatchID] = []string{batchID}
			h[hdrBatchSeq] = []string{strconv.Itoa(i + 1)}
			if i == len(events)-1 {
				h[hdrBatchCommit] = []string{"1"}
			}
		}
		if !e.generatedID {
			h[hdrMsgID] = []string{e.ID}
		}
		msgs[i] = &nats.Msg{Subject: prefix + token(e.Type), Header: h, Data: e.Data}
	}
	return msgs
}

// publish sends the messages and waits for the one acknowledgement. A
// message over the server's max_payload is refused before anything is
// sent (an *engine.TooLargeError naming the limit: 413).
func (s *Store) publish(ctx context.Context, msgs []*nats.Msg) (pubAck, error) {
	for i, m := range msgs {
		if err := engine.CheckMsg(s.nc, m); err != nil {
			return pubAck{}, fmt.Errorf("eventstore: event %d: %w", i, err)
		}
	}
	for _, m := range msgs[:len(msgs)-1] {
		if err := s.nc.PublishMsg(m); err != nil {
			return pubAck{}, publishErr(err)
		}
	}
	var resp *nats.Msg
	var err error
	if ctx.Done() == nil {
		// No cancellation to watch: the plain request skips a context
		// timer per append.
		resp, err = s.nc.RequestMsg(msgs[len(msgs)-1], s.cfg.RequestTimeout)
	} else {
		rctx, cancel := s.withTimeout(ctx)
		resp, err = s.nc.RequestMsgWithContext(rctx, msgs[len(msgs)-1])
		cancel()
	}
	if err != nil {
		return pubAck{}, publishErr(err)
	}
	if ack, ok := parseAck(resp.Data); ok {
		return ack, nil
	}
	var ack pubAck
	if err := json.Unmarshal(resp.Data, &ack); err != nil {
		return pubAck{}, fmt.Errorf("eventstore: bad acknowledgement %q: %w", resp.Data, err)
	}
	if ack.Error == nil && ack.Seq == 0 {
		return pubAck{}, fmt.Errorf("eventstore: bad acknowledgement %q", resp.Data)
	}
	return ack, nil
}

// parseAck reads the common acknowledgement {"stream":…,"seq":N} (maybe
// with "domain", "count", "batch") without reflection; anything unusual
// (errors, duplicates) is left to encoding/json.
func parseAck(b []byte) (pubAck, bool) {
	if bytes.Contains(b, []byte(`"error"`)) || bytes.Contains(b, []byte(`"duplicate"`)) {
		return pubAck{}, false
	}
	i := bytes.Index(b, []byte(`"seq":`))
	if i < 0 {
		return pubAck{}, false
	}
	var seq uint64
	j := i + len(`"seq":`)
	for ; j < len(b) && b[j] >= '0' && b[j] <= '9'; j++ {
		seq = seq*10 + uint64(b[j]-'0')
	}
	if seq == 0 {
		return pubAck{}, false
	}
	return pubAck{Seq: seq}, true
}

func publishErr(err error) error {
	return fmt.Errorf("eventstore: publish: %w", engine.Classify(err))
}
