package eventstore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/retry"
)

// maxReplicaRetries bounds the reads of a message a replica has not
// applied yet (lastConfirmed).
const maxReplicaRetries = 12

// lastConfirmed is last without trusting a replica. Direct gets, which
// every read uses, are answered by any replica of a clustered stream,
// followers included, and a follower may not have applied the latest
// appends yet: the version it reports can be older than one a writer was
// already answered. Here the stream leader names the sequence of the
// stream's last message, and that message is read by sequence (a replica
// without it answers none, and the read is repeated).
func (s *Store) lastConfirmed(ctx context.Context, stream string) (verPos, error) {
	seq, err := s.leaderLastSeq(ctx, stream)
	if err != nil || seq == 0 {
		return verPos{}, err
	}
	for n := 0; ; n++ {
		m, err := s.getOne(ctx, getRequest{Seq: seq})
		if err != nil {
			return verPos{}, err
		}
		if m != nil {
			return s.lastOf(stream, m)
		}
		if n == maxReplicaRetries {
			return verPos{}, fmt.Errorf("eventstore: read: message %d of %q not on the replicas: %w", seq, stream, engine.ErrUnavailable)
		}
		if err := retry.Sleep(ctx, backoff(n)); err != nil {
			return verPos{}, fmt.Errorf("eventstore: read: %w", engine.Classify(err))
		}
	}
}

// leaderMsgGet is the stream leader's answer to a message get; only the
// sequence is read.
type leaderMsgGet struct {
	Message *struct {
		Seq uint64 `json:"seq"`
	} `json:"message"`
	Error *jetstream.APIError `json:"error"`
}

// leaderLastSeq asks the stream leader (the JetStream API's message get,
// not a direct get) for the sequence of the stream's last message; 0 when
// it has none.
func (s *Store) leaderLastSeq(ctx context.Context, stream string) (uint64, error) {
	body, _ := json.Marshal(getRequest{LastFor: streamFilter(stream)})
	m, err := s.nc.RequestWithContext(ctx, s.msgGetSubj, body)
	if err != nil {
		return 0, fmt.Errorf("eventstore: read: %w", engine.Classify(err))
	}
	var a leaderMsgGet
	if err := json.Unmarshal(m.Data, &a); err != nil {
		return 0, fmt.Errorf("eventstore: read: bad answer %q: %w", m.Data, err)
	}
	switch {
	case a.Error != nil && a.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return 0, nil
	case a.Error != nil:
		return 0, fmt.Errorf("eventstore: read: %w", engine.Classify(a.Error))
	case a.Message == nil || a.Message.Seq == 0:
		return 0, fmt.Errorf("eventstore: read: bad answer %q", m.Data)
	}
	return a.Message.Seq, nil
}
