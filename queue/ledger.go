package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/plexushq/plexus/engine"
)

// The ledger stream keeps, per queue, how many messages each Subscribe and
// each client's HTTP receivers hold, so that every node counts a queue's
// in-flight messages:
//
//	plexus.ql.<queue>.s.<sub>    a Subscribe's held count, refreshed while it runs
//	plexus.ql.<queue>.s.r<id>    the receipts client <id> has out (holds.go), every second
//
// Each entry expires (TTL) when its writer stops refreshing it. The first
// version also kept an entry per delivery here to bind receipts to
// deliveries; the issuing client does that now (holds.go).
const (
	// LedgerStream is the ledger's stream.
	LedgerStream = "PLEXUS_QLEDGER"
	ledgerRoot   = "plexus.ql."
)

// errRepeat: the delivery was already acked with this receipt.
var errRepeat = errors.New("already acknowledged")

func (n *names) ledgerSubs() string { return ledgerRoot + n.tok + ".s.*" }
func (n *names) ledgerSub(id string) string {
	return ledgerRoot + n.tok + ".s." + id
}
func (n *names) ledgerAll() string { return ledgerRoot + n.tok + ".>" }

// ensureLedger creates or updates the ledger stream.
func (b *Broker) ensureLedger(ctx context.Context) error {
	_, err := engine.EnsureStreamOn(ctx, b.js, jetstream.StreamConfig{
		Name:              LedgerStream,
		Description:       "Plexus queue ledger: how many messages each receiver holds",
		Subjects:          []string{ledgerRoot + ">"},
		Storage:           jetstream.FileStorage,
		Replicas:          b.opts.Replicas,
		MaxMsgsPerSubject: 1,
		Discard:           jetstream.DiscardOld,
		AllowMsgTTL:       true,
		AllowDirect:       true,
	}, b.log)
	if err != nil {
		return fmt.Errorf("queue: delivery ledger: %w", err)
	}
	return nil
}

// ttlFor is a ledger entry's TTL: d rounded up to whole seconds (the
// engine's unit), at least one.
func ttlFor(d time.Duration) string {
	s := max(int64((d+time.Second-1)/time.Second), 1)
	return strconv.FormatInt(s, 10) + "s"
}

// inFlight counts what receivers hold now: the receipts this client has
// out (holds.go) plus the counts other clients and Subscribe handlers
// report.
func (b *Broker) inFlight(ctx context.Context, q *qstate) (int64, error) {
	n := int64(b.holds.count(q.n.queue, b.opts.Clock.Now()))
	si, err := b.ledger.Info(ctx, jetstream.WithSubjectFilter(q.n.ledgerSubs()))
	if err != nil {
		return 0, fmt.Errorf("queue %q: in flight: %w", q.n.queue, engine.Classify(err))
	}
	own := q.n.ledgerSub("r" + b.holds.idString())
	for subj := range si.State.Subjects {
		if subj == own {
			continue // counted from memory, exactly
		}
		m, err := b.ledgerLast(ctx, subj)
		if err != nil {
			return 0, err
		}
		if m != nil {
			k, _ := strconv.ParseInt(string(m.Data), 10, 64)
			n += max(k, 0)
		}
	}
	return n, nil
}

// ledgerLast is the last entry on subj, nil when there is none.
func (b *Broker) ledgerLast(ctx context.Context, subj string) (*jetstream.RawStreamMsg, error) {
	m, err := b.ledger.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("queue: ledger: %w", engine.Classify(err))
	}
	return m, nil
}

// reportHeld records how many messages a Subscribe (or this client's
// receipts) holds, until ttl.
func (b *Broker) reportHeld(n *names, id string, held int, ttl time.Duration) {
	m := &nats.Msg{Subject: n.ledgerSub(id), Data: []byte(strconv.Itoa(held)),
		Header: nats.Header{jetstream.MsgTTLHeader: []string{ttlFor(ttl)}}}
	_, _ = b.js.PublishMsgAsync(m) // best effort: a missed report ages out with its TTL
}

// forgetLedger drops a deleted queue's ledger entries.
func (b *Broker) forgetLedger(ctx context.Context, n *names) error {
	err := b.ledger.Purge(ctx, jetstream.WithPurgeSubject(n.ledgerAll()))
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("queue %q: ledger: %w", n.queue, engine.Classify(err))
	}
	return nil
}
