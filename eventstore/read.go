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
	// Backward makes ReadAll return the matching events at or before
	// FromPosition (0: the newest), newest first ("direction=backward").
	Backward bool
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
	MaxBytes  int        `json:"max_bytes,omitempty"`
	UpToSeq   uint64     `json:"up_to_seq,omitempty"`
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
	return v.version, v.pos, err
}

// last reads the stream's last event.
func (s *Store) last(ctx context.Context, stream string) (verPos, error) {
	m, err := s.getOne(ctx, getRequest{LastFor: streamFilter(stream)})
	if err != nil || m == nil {
		return verPos{}, err
	}
	return s.lastOf(stream, m)
}

// lastOf reads the stream's version and position at m, its last message,
// and caches them.
func (s *Store) lastOf(stream string, m *nats.Msg) (verPos, error) {
	dm, err := directMessage(m)
	if err != nil {
		return verPos{}, err
	}
	var v verPos
	err = s.layout().events(dm, func(e *storedEvent) error {
		v = verPos{version: e.Version, seq: dm.seq, pos: e.Position}
		return nil
	})
	if err != nil {
		return verPos{}, err
	}
	s.versions.put(stream, v)
	return v, nil
}

// readMessage reads the events of the message at seq; none when there is
// no such message.
func (s *Store) readMessage(ctx context.Context, seq uint64) ([]storedEvent, error) {
	m, err := s.getOne(ctx, getRequest{Seq: seq})
	if err != nil || m == nil {
		return nil, err
	}
	dm, err := directMessage(m)
	if err != nil {
		return nil, err
	}
	var out []storedEvent
	err = s.layout().events(dm, func(e *storedEvent) error {
		out = append(out, *e)
		return nil
	})
	return out, err
}

// eventAt reads the event at position p; ErrNotFound when there is none.
func (s *Store) eventAt(ctx context.Context, p uint64) (storedEvent, error) {
	seq, _ := s.layout().at(p)
	evs, err := s.readMessage(ctx, seq)
	if err != nil {
		return storedEvent{}, err
	}
	for _, e := range evs {
		if e.Position == p {
			return e, nil
		}
	}
	return storedEvent{}, fmt.Errorf("%w: no event at position %d", ErrNotFound, p)
}

// ReadStream returns up to limit events of stream from version fromVersion
// on, oldest first. ErrStreamNotFound when the stream has no events.
func (s *Store) ReadStream(ctx context.Context, stream string, fromVersion int64, limit int) ([]Envelope, error) {
	return s.readStream(ctx, stream, fromVersion, 0, limit)
}

// ReadStreamAfter is ReadStream for a reader that also knows the position
// of version fromVersion-1 (a snapshot does): it starts reading there.
func (s *Store) ReadStreamAfter(ctx context.Context, stream string, fromVersion int64, afterPosition uint64, limit int) ([]Envelope, error) {
	seq, _ := s.layout().at(afterPosition + 1)
	return s.readStream(ctx, stream, fromVersion, seq, limit)
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
	limit = limitOr(limit)
	out := make([]Envelope, 0, min(int64(limit), last.version-fromVersion+1))
	err = s.streamEvents(ctx, stream, startSeq, limit, func(e *storedEvent) bool {
		if e.Version >= fromVersion {
			out = append(out, e.Envelope)
		}
		return len(out) < limit
	})
	return out, err
}

// streamEvents calls fn with the stream's events from the message at seq
// on (at most max messages), until fn returns false.
func (s *Store) streamEvents(ctx context.Context, stream string, seq uint64, maxMsgs int, fn func(*storedEvent) bool) error {
	d := &decoder{l: s.layout()}
	return s.readDirect(ctx, seq, streamFilter(stream), maxMsgs, func(m message) (bool, error) {
		more := true
		err := d.events(m, func(e *storedEvent) error {
			if more {
				more = fn(e)
			}
			return nil
		})
		return more, err
	})
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
	err = s.streamEvents(ctx, stream, seq, int(fromVersion-low+1), func(e *storedEvent) bool {
		if e.Version >= low && e.Version <= fromVersion {
			out = append(out, e.Envelope)
		}
		return e.Version < fromVersion
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

// seqOfVersion finds the sequence of the stream's message that holds
// version v, by binary search over sequences (versions grow with them).
// Readers that know a position (snapshots) skip it.
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
		dm, err := directMessage(m)
		if err != nil {
			return 0, err
		}
		first, n, err := versionsOf(dm)
		if err != nil {
			return 0, err
		}
		switch {
		case v >= first && v < first+n:
			return dm.seq, nil
		case first > v:
			hi = mid
		default:
			lo = dm.seq + 1
		}
	}
	return lo, nil
}

// versionsOf is the first version of the events of a stream's message
// and their number, without decoding them.
func versionsOf(m message) (first, n int64, err error) {
	if vs := m.header.Get(hdrVersion); vs != "" {
		first, err = strconv.ParseInt(vs, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("eventstore: event %d has no version: %w", m.seq, err)
		}
		return first, 1, nil
	}
	r, k, err := readFrame(m.data)
	if err != nil {
		return 0, 0, fmt.Errorf("eventstore: message %d: %w", m.seq, err)
	}
	return r.next, int64(k), nil
}

// ReadAll returns a page of events in global order (or, with q.Backward,
// in reverse order from q.FromPosition down).
func (s *Store) ReadAll(ctx context.Context, q Query) (Page, error) {
	if err := q.Validate(); err != nil {
		return Page{}, err
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if q.Backward {
		return s.readAllBackward(ctx, q)
	}
	l := s.layout()
	from, err := s.startPosition(ctx, q)
	if err != nil {
		return Page{}, err
	}
	page := Page{Events: []Envelope{}, NextPosition: max(q.FromPosition, 1)}
	if from == 0 {
		return page, nil
	}
	seq, _ := l.at(from)
	d := &decoder{l: l}
	limit := limitOr(q.Limit)
	types := typeSet(q.Types)
	for _, f := range filterSubjects(q.Category, q.Types) {
		n := 0
		// Every message holds an event at least, but for the format marker.
		err := s.readDirect(ctx, seq, f, limit+1, func(m message) (bool, error) {
			err := d.events(m, func(e *storedEvent) error {
				if n < limit && e.Position >= from && types.has(e.Type) {
					page.Events = append(page.Events, e.Envelope)
					n++
				}
				return nil
			})
			return n < limit, err
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

// startPosition is where a read of q starts: q.FromPosition, moved on to
// the first event stored at or after q.Since; 0 when no event is.
func (s *Store) startPosition(ctx context.Context, q Query) (uint64, error) {
	from := max(q.FromPosition, 1)
	if q.Since.IsZero() {
		return from, nil
	}
	since := q.Since
	m, err := s.getOne(ctx, getRequest{StartTime: &since, NextFor: subjectRoot + ">"})
	if err != nil || m == nil {
		return 0, err
	}
	seq, err := strconv.ParseUint(m.Header.Get(hdrSequence), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("eventstore: answer without a sequence: %w", err)
	}
	return max(from, s.layout().pos(seq, 0)), nil
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

// Bounds of one batched direct get's answer: a read asks for
// directFirstBytes, then for twice as much each time it needs more, up to
// directMaxBytes. A reader that stops early (a page full after one large
// append) wastes little; one that reads many small appends needs few
// requests.
const (
	directFirstBytes = 64 << 10
	directMaxBytes   = 1 << 20
)

// readDirect calls fn with the messages matching filter from seq on, in
// order, until fn returns false, none is left or maxMsgs were read.
func (s *Store) readDirect(ctx context.Context, seq uint64, filter string, maxMsgs int, fn func(message) (bool, error)) error {
	return s.readDirectUpTo(ctx, seq, 0, filter, maxMsgs, fn)
}

// readDirectUpTo is readDirect that stops after the message at upTo (0:
// the last).
func (s *Store) readDirectUpTo(ctx context.Context, seq, upTo uint64, filter string, maxMsgs int, fn func(message) (bool, error)) error {
	for size := directFirstBytes; maxMsgs > 0; size = min(2*size, directMaxBytes) {
		b, err := s.getBatch(ctx, getRequest{Seq: seq, NextFor: filter, Batch: maxMsgs, MaxBytes: size, UpToSeq: upTo}, fn)
		if err != nil || b.stopped || b.pending == 0 || b.n == 0 {
			return err
		}
		seq, maxMsgs = b.last+1, maxMsgs-b.n
	}
	return nil
}

// batchEnd is how a batched direct get ended.
type batchEnd struct {
	n       int    // messages read
	last    uint64 // sequence of the last
	pending uint64 // matching messages left after it
	stopped bool   // fn asked to stop
}

// getBatch is a batched direct get: the engine streams the messages and
// ends with an end-of-batch status. fn returning false stops the read.
func (s *Store) getBatch(ctx context.Context, req getRequest, fn func(message) (bool, error)) (batchEnd, error) {
	var b batchEnd
	inbox := s.nc.NewRespInbox()
	sub, err := s.nc.SubscribeSync(inbox)
	if err != nil {
		return b, fmt.Errorf("eventstore: read: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	body, _ := json.Marshal(req)
	if err := s.nc.PublishRequest(s.getSubj, inbox, body); err != nil {
		return b, fmt.Errorf("eventstore: read: %w", err)
	}
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return b, fmt.Errorf("eventstore: read: %w", engine.Classify(err))
		}
		switch st := m.Header.Get(hdrStatus); st {
		case "":
		case "204":
			b.pending, _ = strconv.ParseUint(m.Header.Get(hdrNumPending), 10, 64)
			return b, nil
		case "404":
			return b, nil
		default:
			return b, fmt.Errorf("eventstore: read: status %s %s", st, m.Header.Get("Description"))
		}
		dm, err := directMessage(m)
		if err != nil {
			return b, err
		}
		b.n, b.last = b.n+1, dm.seq
		more, err := fn(dm)
		if err != nil || !more {
			b.stopped = true
			return b, err
		}
	}
}
