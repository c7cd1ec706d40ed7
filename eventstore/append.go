package eventstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
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
	errCodeMsgTooLarge       = jetstream.JSErrCodeStreamMessageExceedsMaximum
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
	var span trace.Span
	if s.cfg.TracerProvider != nil { // without one, the caller's trace context still travels
		ctx, span = s.tracer.Start(ctx, "eventstore.append", trace.WithSpanKind(trace.SpanKindProducer))
		defer span.End()
		if span.IsRecording() {
			span.SetAttributes(attribute.String("plexus.stream", stream), attribute.Int("plexus.events", len(events)))
		}
	}
	res, err := s.appendEvents(ctx, stream, expected, events)
	s.metrics.appended(len(events), err, time.Since(start))
	if err != nil && span != nil {
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
	for attempt, inProcess := 0, 0; ; {
		cur, err := s.base(ctx, stream, expected)
		if err != nil {
			return AppendResult{}, err
		}
		ack, err := s.publish(ctx, buildMsg(ctx, stream, cur, events))
		if err != nil {
			return AppendResult{}, err
		}
		if ack.Error != nil {
			switch ack.Error.ErrorCode {
			case errCodeWrongLastSeqConst:
				// Nothing was checked nor stored: the stream is in process
				// (see inProcess). Not a conflict; try again.
				if err := s.inProcess(ctx, stream, inProcess); err != nil {
					return AppendResult{}, err
				}
				inProcess++
				continue
			case errCodeWrongLastSeq:
				s.versions.drop(stream)
				if expected == AnyVersion && attempt < maxAnyRetries {
					attempt++
					continue
				}
				return AppendResult{}, s.conflict(ctx, stream, expected)
			case errCodeMsgTooLarge:
				return AppendResult{}, fmt.Errorf("eventstore: append to %q: %w", stream, engine.ErrTooLarge)
			}
			return AppendResult{}, fmt.Errorf("eventstore: append to %q: %w", stream, engine.Classify(ack.Error))
		}
		if ack.Duplicate {
			return s.duplicate(ctx, stream, ack.Seq, events)
		}
		n := len(events)
		l := s.layout()
		res := AppendResult{Version: cur.version + int64(n), Position: l.pos(ack.Seq, n-1),
			FirstPosition: l.pos(ack.Seq, 0), IDs: make([]string, n)}
		s.versions.put(stream, verPos{version: res.Version, seq: ack.Seq, pos: res.Position})
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
	var seen map[string]struct{}
	if len(events) > 1 {
		seen = make(map[string]struct{}, len(events))
	}
	for i := range events {
		e := &events[i]
		if e.ID == "" {
			e.ID, e.generatedID = nuid.Next(), true
			continue
		}
		if _, dup := seen[e.ID]; dup {
			return nil, invalidf("event id %q appears twice in one append", e.ID)
		}
		if seen != nil {
			seen[e.ID] = struct{}{}
		}
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
	if err == nil && expected != AnyVersion && v.version != expected {
		// The replica that answered may lag: only the leader's answer
		// makes a conflict.
		v, err = s.lastConfirmed(rctx, stream)
		if err == nil && v.version != expected {
			return verPos{}, &ConflictError{Stream: stream, Expected: expected, Current: v.version}
		}
	}
	return v, err
}

// maxInProcessRetries bounds the retries of an append the engine refused
// because an earlier append to the same stream was still in process.
const maxInProcessRetries = 12

// backoff is the wait before the n-th retry (from 0) of a request the
// engine answered "not yet": 1 ms, doubling up to 32 ms.
func backoff(n int) time.Duration {
	return time.Millisecond << min(n, 5)
}

// inProcess waits before the n-th retry of an append refused with "wrong
// last sequence" without a sequence (10164). A clustered stream leader
// refuses an append whose expected-last-subject-sequence check names a
// subject filter another append's check still holds, without checking or
// storing it; and it holds the filter until just after it has sent that
// other append's acknowledgement, so a writer that appends again as soon
// as its previous append is acknowledged is refused now and then (one
// append in a few thousand on a 3-node R3 cluster) though nobody else
// wrote. After maxInProcessRetries it gives up with ErrBusy (nothing was
// stored, the append may be retried as it is).
func (s *Store) inProcess(ctx context.Context, stream string, n int) error {
	if n >= maxInProcessRetries {
		return fmt.Errorf("eventstore: append to %q: %w: another append to the stream stayed in process", stream, ErrBusy)
	}
	if err := retry.Sleep(ctx, backoff(n)); err != nil {
		return fmt.Errorf("eventstore: append to %q: %w", stream, engine.Classify(err))
	}
	return nil
}

// conflict is the error of an append the engine refused: the stream's
// version is read without trusting a replica that may lag.
func (s *Store) conflict(ctx context.Context, stream string, expected int64) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	v, err := s.lastConfirmed(ctx, stream)
	if err != nil {
		return err
	}
	return &ConflictError{Stream: stream, Expected: expected, Current: v.version}
}

// duplicate answers a retried append whose first event's writer-supplied
// id was stored: with what the stored append got.
func (s *Store) duplicate(ctx context.Context, stream string, seq uint64, events []Event) (AppendResult, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	stored, err := s.readMessage(ctx, seq)
	if err != nil {
		return AppendResult{}, err
	}
	if len(stored) == 0 {
		return AppendResult{}, fmt.Errorf("eventstore: duplicate of message %d that cannot be read", seq)
	}
	if stored[0].Stream != stream {
		return AppendResult{}, invalidf("event id %q is already used in stream %q", events[0].ID, stored[0].Stream)
	}
	last := stored[len(stored)-1]
	res := AppendResult{Version: last.Version, Position: last.Position, FirstPosition: stored[0].Position,
		IDs: make([]string, len(stored)), Duplicate: true}
	for i := range stored {
		res.IDs[i] = stored[i].ID
	}
	return res, nil
}

// buildMsg makes the append's one message: its events framed in the
// payload, the expected last position of the stream in the headers, and
// the first event's writer-supplied id as the deduplication key.
func buildMsg(ctx context.Context, stream string, cur verPos, events []Event) *nats.Msg {
	prefix := streamPrefix(stream)
	h := make(nats.Header, 3)
	vals := []string{strconv.FormatUint(cur.seq, 10), prefix + "*", events[0].ID}
	h[hdrExpSubjSeq], h[hdrExpSubjSeqSub] = vals[0:1:1], vals[1:2:2]
	if !events[0].generatedID {
		h[hdrMsgID] = vals[2:3:3]
	}
	size := 16
	for i := range events {
		size += len(events[i].Data) + len(events[i].Metadata) + len(events[i].ID) + len(events[i].Type) +
			len(events[i].CorrelationID) + len(events[i].Source) + len(events[i].CausationID) + 16
	}
	data := appendFrame(make([]byte, 0, size+256), cur.version+1, events, telemetry.TraceOf(ctx))
	return &nats.Msg{Subject: prefix + appendType(events), Header: h, Data: data}
}

// publish sends the append's message and waits for its acknowledgement. A
// message over the server's max_payload is refused before anything is
// sent (an *engine.TooLargeError naming the limit: 413).
func (s *Store) publish(ctx context.Context, msg *nats.Msg) (pubAck, error) {
	if err := engine.CheckMsg(s.nc, msg); err != nil {
		return pubAck{}, fmt.Errorf("eventstore: append: %w", err)
	}
	var resp *nats.Msg
	var err error
	if ctx.Done() == nil {
		// No cancellation to watch: the plain request skips a context
		// timer per append.
		resp, err = s.nc.RequestMsg(msg, s.cfg.RequestTimeout)
	} else {
		rctx, cancel := s.withTimeout(ctx)
		resp, err = s.nc.RequestMsgWithContext(rctx, msg)
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
