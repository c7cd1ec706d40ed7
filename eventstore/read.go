package eventstore

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/plexushq/plexus/engine"
)

// Read limits.
const (
	// DefaultReadLimit is the page size when a read names none.
	DefaultReadLimit = 100
	// MaxReadLimit bounds one page.
	MaxReadLimit = 1000
	// MaxTypes bounds the types of one filter.
	MaxTypes = 32
)

// Query selects events in global order.
type Query struct {
	// FromPosition is the first position to consider (default 1).
	FromPosition uint64
	// Types keeps only these event types (any when empty).
	Types []string
	// Category keeps only streams of this category (any when empty).
	Category string
	// Since keeps only events stored at or after this time.
	Since time.Time
	// Limit bounds the page (DefaultReadLimit when 0, at most MaxReadLimit).
	Limit int
	// OnlyNew makes Tail skip the stored events and deliver only those
	// appended after it starts ("fromPosition=end" in the API).
	OnlyNew bool
}

// Validate reports a query that cannot be answered.
func (q *Query) Validate() error {
	if q.Limit < 0 || q.Limit > MaxReadLimit {
		return invalidf("limit %d: want 1 to %d", q.Limit, MaxReadLimit)
	}
	if len(q.Types) > MaxTypes {
		return invalidf("%d types: at most %d", len(q.Types), MaxTypes)
	}
	for _, t := range q.Types {
		if !ValidType(t) {
			return invalidf("type %q is not a valid event type", t)
		}
	}
	if q.Category != "" && !ValidStreamName(q.Category) {
		return invalidf("category %q is not a valid name", q.Category)
	}
	return nil
}

// Page is one page of a global read.
type Page struct {
	Events []Envelope `json:"events"`
	// NextPosition is where the next page starts.
	NextPosition uint64 `json:"nextPosition"`
}

// getRequest is JetStream's direct get request.
type getRequest struct {
	Seq       uint64     `json:"seq,omitempty"`
	LastFor   string     `json:"last_by_subj,omitempty"`
	NextFor   string     `json:"next_by_subj,omitempty"`
	Batch     int        `json:"batch,omitempty"`
	StartTime *time.Time `json:"start_time,omitempty"`
}

// Version returns the stream's current version and the position of its
// last event; 0 and 0 for a stream without events.
func (s *Store) Version(ctx context.Context, stream string) (version int64, position uint64, err error) {
	if !ValidStreamName(stream) {
		return 0, 0, invalidf("stream %q is not a valid name", stream)
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	v, err := s.last(ctx, stream)
	return v.version, v.seq, err
}

// last reads the stream's last event.
func (s *Store) last(ctx context.Context, stream string) (verPos, error) {
	m, err := s.getOne(ctx, getRequest{LastFor: streamFilter(stream)})
	if err != nil || m == nil {
		return verPos{}, err
	}
	env, err := envelopeFromDirect(m)
	if err != nil {
		return verPos{}, err
	}
	v := verPos{env.Version, env.Position}
	s.versions.put(stream, v)
	return v, nil
}

// ReadStream returns up to limit events of stream from version fromVersion
// on, oldest first. ErrStreamNotFound when the stream has no events.
func (s *Store) ReadStream(ctx context.Context, stream string, fromVersion int64, limit int) ([]Envelope, error) {
	return s.readStream(ctx, stream, fromVersion, 0, limit)
}

// ReadStreamAfter is ReadStream for a reader that also knows the position
// of version fromVersion-1 (a snapshot does): it starts reading there.
func (s *Store) ReadStreamAfter(ctx context.Context, stream string, fromVersion int64, afterPosition uint64, limit int) ([]Envelope, error) {
	return s.readStream(ctx, stream, fromVersion, afterPosition+1, limit)
}

func (s *Store) readStream(ctx context.Context, stream string, fromVersion int64, startSeq uint64, limit int) ([]Envelope, error) {
	if err := checkStreamRead(stream, limit); err != nil {
		return nil, err
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	last, err := s.last(ctx, stream)
	if err != nil {
		return nil, err
	}
	if last.version == 0 {
		return nil, fmt.Errorf("%w: %q", ErrStreamNotFound, stream)
	}
	fromVersion = max(fromVersion, 1)
	if fromVersion > last.version {
		return []Envelope{}, nil
	}
	if startSeq == 0 {
		if startSeq, err = s.seqOfVersion(ctx, stream, fromVersion, last); err != nil {
			return nil, err
		}
	}
	out := make([]Envelope, 0, min(int64(limitOr(limit)), last.version-fromVersion+1))
	err = s.getBatch(ctx, getRequest{Seq: startSeq, NextFor: streamFilter(stream), Batch: limitOr(limit)}, func(e Envelope) {
		if e.Version >= fromVersion {
			out = append(out, e)
		}
	})
	return out, err
}

// ReadStreamBackward returns up to limit events of stream from version
// fromVersion down (the newest when fromVersion <= 0), newest first.
func (s *Store) ReadStreamBackward(ctx context.Context, stream string, fromVersion int64, limit int) ([]Envelope, error) {
	if err := checkStreamRead(stream, limit); err != nil {
		return nil, err
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	last, err := s.last(ctx, stream)
	if err != nil {
		return nil, err
	}
	if last.version == 0 {
		return nil, fmt.Errorf("%w: %q", ErrStreamNotFound, stream)
	}
	if fromVersion <= 0 || fromVersion > last.version {
		fromVersion = last.version
	}
	low := max(1, fromVersion-int64(limitOr(limit))+1)
	seq, err := s.seqOfVersion(ctx, stream, low, last)
	if err != nil {
		return nil, err
	}
	out := make([]Envelope, 0, fromVersion-low+1)
	err = s.getBatch(ctx, getRequest{Seq: seq, NextFor: streamFilter(stream), Batch: int(fromVersion - low + 1)}, func(e Envelope) {
		if e.Version >= low && e.Version <= fromVersion {
			out = append(out, e)
		}
	})
	slices.Reverse(out)
	return out, err
}

func checkStreamRead(stream string, limit int) error {
	if !ValidStreamName(stream) {
		return invalidf("stream %q is not a valid name", stream)
	}
	if limit < 0 || limit > MaxReadLimit {
		return invalidf("limit %d: want 1 to %d", limit, MaxReadLimit)
	}
	return nil
}

func limitOr(limit int) int {
	if limit <= 0 {
		return DefaultReadLimit
	}
	return limit
}

// seqOfVersion finds a position from which the stream's next event is the
// one with version v, by binary search over positions (versions grow with
// positions). Readers that know a position (snapshots) skip it.
func (s *Store) seqOfVersion(ctx context.Context, stream string, v int64, last verPos) (uint64, error) {
	if v <= 1 {
		return 1, nil
	}
	if v == last.version {
		return last.seq, nil
	}
	filter := streamFilter(stream)
	lo, hi := uint64(1), last.seq
	for lo < hi {
		mid := lo + (hi-lo)/2
		m, err := s.getOne(ctx, getRequest{Seq: mid, NextFor: filter})
		if err != nil {
			return 0, err
		}
		if m == nil {
			return last.seq, nil
		}
		e, err := envelopeFromDirect(m)
		if err != nil {
			return 0, err
		}
		switch {
		case e.Version == v:
			return e.Position, nil
		case e.Version > v:
			hi = mid
		default:
			lo = e.Position + 1
		}
	}
	return lo, nil
}

// ReadAll returns a page of events in global order.
func (s *Store) ReadAll(ctx context.Context, q Query) (Page, error) {
	if err := q.Validate(); err != nil {
		return Page{}, err
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	from := max(q.FromPosition, 1)
	page := Page{Events: []Envelope{}, NextPosition: from}
	if !q.Since.IsZero() {
		since := q.Since
		m, err := s.getOne(ctx, getRequest{StartTime: &since, NextFor: subjectRoot + ">"})
		if err != nil {
			return Page{}, err
		}
		if m == nil {
			return page, nil
		}
		seq, _ := strconv.ParseUint(m.Header.Get(hdrSequence), 10, 64)
		from = max(from, seq)
	}
	limit := limitOr(q.Limit)
	for _, f := range filterSubjects(q.Category, q.Types) {
		err := s.getBatch(ctx, getRequest{Seq: from, NextFor: f, Batch: limit}, func(e Envelope) {
			page.Events = append(page.Events, e)
		})
		if err != nil {
			return Page{}, err
		}
	}
	slices.SortFunc(page.Events, func(a, b Envelope) int { return cmp.Compare(a.Position, b.Position) })
	if len(page.Events) > limit {
		page.Events = page.Events[:limit]
	}
	if n := len(page.Events); n > 0 {
		page.NextPosition = page.Events[n-1].Position + 1
	}
	return page, nil
}

// getOne is a direct get of one message; nil when there is none.
func (s *Store) getOne(ctx context.Context, req getRequest) (*nats.Msg, error) {
	body, _ := json.Marshal(req)
	m, err := s.nc.RequestWithContext(ctx, s.getSubj, body)
	if err != nil {
		return nil, fmt.Errorf("eventstore: read: %w", engine.Classify(err))
	}
	switch st := m.Header.Get(hdrStatus); st {
	case "":
		return m, nil
	case "404":
		return nil, nil
	default:
		return nil, fmt.Errorf("eventstore: read: status %s %s", st, m.Header.Get("Description"))
	}
}

// getBatch is a batched direct get: the engine streams the messages and
// ends with an end-of-batch status.
func (s *Store) getBatch(ctx context.Context, req getRequest, fn func(Envelope)) error {
	inbox := s.nc.NewRespInbox()
	sub, err := s.nc.SubscribeSync(inbox)
	if err != nil {
		return fmt.Errorf("eventstore: read: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	body, _ := json.Marshal(req)
	if err := s.nc.PublishRequest(s.getSubj, inbox, body); err != nil {
		return fmt.Errorf("eventstore: read: %w", err)
	}
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return fmt.Errorf("eventstore: read: %w", engine.Classify(err))
		}
		switch st := m.Header.Get(hdrStatus); st {
		case "":
		case "204", "404":
			return nil
		default:
			return fmt.Errorf("eventstore: read: status %s %s", st, m.Header.Get("Description"))
		}
		e, err := envelopeFromDirect(m)
		if err != nil {
			return err
		}
		fn(e)
	}
}

// envelopeFromDirect builds an envelope from a direct get answer.
func envelopeFromDirect(m *nats.Msg) (Envelope, error) {
	seq, err := strconv.ParseUint(m.Header.Get(hdrSequence), 10, 64)
	if err != nil {
		return Envelope{}, fmt.Errorf("eventstore: answer without a sequence: %w", err)
	}
	ts, _ := time.Parse(time.RFC3339Nano, m.Header.Get(hdrTimeStamp))
	return envelope(m.Header.Get(hdrSubject), seq, ts, m.Header, m.Data)
}

// envelope builds an envelope from a stored message's parts.
func envelope(subject string, seq uint64, ts time.Time, h nats.Header, data []byte) (Envelope, error) {
	stream, typ, ok := parseSubject(subject)
	if !ok {
		return Envelope{}, fmt.Errorf("eventstore: message %d has subject %q, not an event's", seq, subject)
	}
	version, err := strconv.ParseInt(h.Get(hdrVersion), 10, 64)
	if err != nil {
		return Envelope{}, fmt.Errorf("eventstore: event %d has no version: %w", seq, err)
	}
	e := Envelope{
		ID: h.Get(hdrID), Type: typ, Stream: stream, Version: version, Position: seq,
		Data: data, Metadata: json.RawMessage(h.Get(hdrMetadata)), Source: h.Get(hdrSource),
		CorrelationID: h.Get(hdrCorrelation), CausationID: h.Get(hdrCausation), Timestamp: ts.UTC(),
	}
	if len(e.Data) == 0 {
		e.Data = json.RawMessage("null")
	}
	if len(e.Metadata) == 0 {
		e.Metadata = json.RawMessage("{}")
	}
	return e, nil
}
