package eventstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/plexushq/plexus/engine"
)

// PositionsPerMessage is how many positions one engine message spans in
// the second stored format: an event's position is
// PositionsPerMessage × (the message's engine sequence) + (its index in
// the append). It equals MaxBatch, so every event of an append has its
// own position, consecutive within the append and increasing across
// appends.
const PositionsPerMessage = MaxBatch

// formatSubject holds the store's format marker: the first message of the
// second format. It is not an event subject (one token after the root),
// so no filter of events matches it.
const formatSubject = subjectRoot + "_format"

// layout maps engine sequences to positions and back. Events stored in
// the first format (one message each, before the marker) keep their
// position, the sequence; messages from the marker on use
// PositionsPerMessage × sequence + index, which is larger than every
// earlier position, so global order and every position a client kept stay
// valid.
type layout struct {
	// from is the sequence of the format marker.
	from uint64
}

// pos is the position of the idx-th event of the message at seq.
func (l layout) pos(seq uint64, idx int) uint64 {
	if seq < l.from {
		return seq
	}
	return seq*PositionsPerMessage + uint64(idx)
}

// lastPos is a bound on the positions of the message at seq: every event
// of it is at or before lastPos.
func (l layout) lastPos(seq uint64) uint64 { return l.pos(seq, PositionsPerMessage-1) }

// at is where position p is, or where the first event after it is: the
// message's sequence and the index of the event within it.
func (l layout) at(p uint64) (seq uint64, idx int) {
	switch {
	case p < l.from:
		return max(p, 1), 0
	case p < l.from*PositionsPerMessage:
		return l.from, 0
	default:
		return p / PositionsPerMessage, int(p % PositionsPerMessage)
	}
}

// formatMarker is the marker's body.
type formatMarker struct {
	Format int `json:"format"`
}

// ensureFormat finds the store's format marker, or writes it: the first
// store to start on a stream writes it (the engine lets only one writer
// create the subject), every other reads it. Events stored before it are
// in the first format.
func (s *Store) ensureFormat(ctx context.Context) (layout, error) {
	for range 3 {
		m, err := s.getOne(ctx, getRequest{LastFor: formatSubject})
		if err != nil {
			return layout{}, err
		}
		if m != nil {
			seq, err := strconv.ParseUint(m.Header.Get(hdrSequence), 10, 64)
			if err != nil || seq == 0 {
				return layout{}, fmt.Errorf("eventstore: format marker without a sequence")
			}
			var fm formatMarker
			if err := json.Unmarshal(m.Data, &fm); err != nil || fm.Format != 2 {
				return layout{}, fmt.Errorf("eventstore: stored format %q is not one this version reads", m.Data)
			}
			return layout{from: seq}, nil
		}
		body, _ := json.Marshal(formatMarker{Format: 2})
		resp, err := s.nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: formatSubject, Data: body,
			Header: nats.Header{hdrExpSubjSeq: []string{"0"}}})
		if err != nil {
			return layout{}, fmt.Errorf("eventstore: format marker: %w", engine.Classify(err))
		}
		var ack pubAck
		if err := json.Unmarshal(resp.Data, &ack); err != nil {
			return layout{}, fmt.Errorf("eventstore: format marker: %w", err)
		}
		if ack.Error == nil {
			return layout{from: ack.Seq}, nil
		}
		if ack.Error.ErrorCode != errCodeWrongLastSeq && ack.Error.ErrorCode != errCodeWrongLastSeqConst {
			return layout{}, fmt.Errorf("eventstore: format marker: %w", engine.Classify(ack.Error))
		}
		// Another store wrote it first: read theirs.
	}
	return layout{}, fmt.Errorf("eventstore: format marker: lost too many races")
}
