package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/plexushq/plexus/engine"
)

// The delivery ledger binds a receipt to one delivery. JetStream acks,
// nacks and extends by stream sequence whoever holds the message, so
// without it an older delivery's receipt would act on the current one
// (ack a message another receiver holds, or hand it to a third). It lives
// in the engine, so every node sees the same ledger, in the stream
// LedgerStream with one subject per queue message:
//
//	plexus.ql.<queue>.m.<seq>.h   held: "<attempt> <visibility ms>", TTL = the visibility timeout
//	plexus.ql.<queue>.m.<seq>.d   done: "a <attempt>" (acked) or "n <attempt>" (nacked)
//	plexus.ql.<queue>.s.<sub>     a Subscribe's held count, refreshed while it runs
//
// A receive writes the held entry (its ledger sequence goes into the
// receipt); ack and nack claim the delivery by deleting exactly that entry
// (only one caller can) and then write the done marker; extend replaces it
// only while it is still the current one. The held entries also count the
// queue's in-flight messages: they expire with the visibility timeout.
const (
	// LedgerStream is the delivery ledger's stream.
	LedgerStream = "PLEXUS_QLEDGER"
	ledgerRoot   = "plexus.ql."
)

// Ledger answers to a receipt.
var (
	// errRepeat: the delivery was already acked with this receipt.
	errRepeat = errors.New("already acknowledged")
)

func (n *names) ledgerHeld(seq uint64) string {
	return ledgerRoot + n.tok + ".m." + strconv.FormatUint(seq, 10) + ".h"
}

func (n *names) ledgerDone(seq uint64) string {
	return ledgerRoot + n.tok + ".m." + strconv.FormatUint(seq, 10) + ".d"
}

func (n *names) ledgerHeldAll() string { return ledgerRoot + n.tok + ".m.*.h" }
func (n *names) ledgerSubs() string    { return ledgerRoot + n.tok + ".s.*" }
func (n *names) ledgerSub(id string) string {
	return ledgerRoot + n.tok + ".s." + id
}
func (n *names) ledgerAll() string { return ledgerRoot + n.tok + ".>" }

// ensureLedger creates or updates the ledger stream.
func (c *Client) ensureLedger(ctx context.Context) error {
	_, err := engine.EnsureStreamOn(ctx, c.js, jetstream.StreamConfig{
		Name:              LedgerStream,
		Description:       "Plexus queue delivery ledger: which delivery each receipt belongs to",
		Subjects:          []string{ledgerRoot + ">"},
		Storage:           jetstream.FileStorage,
		Replicas:          c.opts.Replicas,
		MaxMsgsPerSubject: 1,
		Discard:           jetstream.DiscardOld,
		AllowMsgTTL:       true,
		AllowDirect:       true,
	}, c.log)
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

// heldEntry builds the held entry of a delivery; expect > 0 replaces that
// entry only (extend).
func heldEntry(q *qstate, seq uint64, attempt int, vt time.Duration, expect uint64) *nats.Msg {
	h := nats.Header{jetstream.MsgTTLHeader: []string{ttlFor(vt)}}
	if expect > 0 {
		h[jetstream.ExpectedLastSubjSeqHeader] = []string{strconv.FormatUint(expect, 10)}
		h[jetstream.ExpectedLastSubjSeqSubjHeader] = []string{q.n.ledgerHeld(seq)}
	}
	data := strconv.Itoa(attempt) + " " + strconv.FormatInt(vt.Milliseconds(), 10)
	return &nats.Msg{Subject: q.n.ledgerHeld(seq), Header: h, Data: []byte(data)}
}

// hold writes the held entries of fresh deliveries, pipelined, and
// returns their ledger sequences.
func (c *Client) hold(ctx context.Context, q *qstate, ds []*Delivery, vt time.Duration) ([]uint64, error) {
	futs := make([]jetstream.PubAckFuture, len(ds))
	for i, d := range ds {
		f, err := c.js.PublishMsgAsync(heldEntry(q, d.seq, d.Attempts, vt, 0))
		if err != nil {
			return nil, fmt.Errorf("queue %q: ledger: %w", q.n.queue, engine.Classify(err))
		}
		futs[i] = f
	}
	out := make([]uint64, len(ds))
	for i, f := range futs {
		select {
		case ack := <-f.Ok():
			out[i] = ack.Sequence
		case err := <-f.Err():
			return nil, fmt.Errorf("queue %q: ledger: %w", q.n.queue, engine.Classify(err))
		case <-ctx.Done():
			return nil, fmt.Errorf("queue %q: ledger: %w", q.n.queue, engine.Classify(ctx.Err()))
		}
	}
	return out, nil
}

// check tells whether ref's delivery is still the current one (nil),
// was acked with it already (errRepeat), or not (ErrReceiptStale).
func (c *Client) check(ctx context.Context, q *qstate, ref ackRef) error {
	held, err := c.ledgerLast(ctx, q.n.ledgerHeld(ref.seq))
	if err != nil {
		return err
	}
	if held != nil && held.Sequence == ref.hseq {
		return nil
	}
	done, err := c.ledgerLast(ctx, q.n.ledgerDone(ref.seq))
	if err != nil {
		return err
	}
	if done != nil && string(done.Data) == "a "+strconv.Itoa(ref.delivered) && (held == nil || heldAttempt(held) <= ref.delivered) {
		return errRepeat
	}
	return fmt.Errorf("%w: the message was nacked, or delivered again (attempt %s), since this receipt was issued",
		ErrReceiptStale, heldAttemptString(held))
}

// claim takes ref's delivery for an ack or a nack: it deletes exactly its
// held entry, which only one caller can do, and records the outcome.
// It returns ErrReceiptStale (or errRepeat) when someone got there first.
func (c *Client) claim(ctx context.Context, q *qstate, ref ackRef, outcome string) error {
	if err := c.ledger.DeleteMsg(ctx, ref.hseq); err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			if cerr := c.check(ctx, q, ref); cerr != nil {
				return cerr
			}
			return fmt.Errorf("%w: claimed by a concurrent request", ErrReceiptStale)
		}
		return fmt.Errorf("queue %q: ledger: %w", q.n.queue, engine.Classify(err))
	}
	m := &nats.Msg{Subject: q.n.ledgerDone(ref.seq), Data: []byte(outcome + " " + strconv.Itoa(ref.delivered)),
		Header: nats.Header{jetstream.MsgTTLHeader: []string{ttlFor(ref.vt + time.Second)}}}
	if _, err := c.js.PublishMsg(ctx, m); err != nil {
		// The claim stands; only a later repeat of this receipt would be
		// answered as stale instead of as a repeat.
		c.log.Warn("queue: recording a delivery's outcome", "queue", q.n.queue, "err", err)
	}
	return nil
}

// ledgerLast is the last entry on subj, nil when there is none.
func (c *Client) ledgerLast(ctx context.Context, subj string) (*jetstream.RawStreamMsg, error) {
	m, err := c.ledger.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("queue: ledger: %w", engine.Classify(err))
	}
	return m, nil
}

func heldAttempt(m *jetstream.RawStreamMsg) int {
	a, _, _ := strings.Cut(string(m.Data), " ")
	n, _ := strconv.Atoi(a)
	return n
}

func heldAttemptString(m *jetstream.RawStreamMsg) string {
	if m == nil {
		return "none"
	}
	return strconv.Itoa(heldAttempt(m))
}

// inFlight counts what receivers hold now: live held entries (receipts)
// plus the counts Subscribe handlers report.
func (c *Client) inFlight(ctx context.Context, q *qstate) (int64, error) {
	si, err := c.ledger.Info(ctx, jetstream.WithSubjectFilter(q.n.ledgerHeldAll()))
	if err != nil {
		return 0, fmt.Errorf("queue %q: in flight: %w", q.n.queue, engine.Classify(err))
	}
	n := int64(len(si.State.Subjects))
	si, err = c.ledger.Info(ctx, jetstream.WithSubjectFilter(q.n.ledgerSubs()))
	if err != nil {
		return 0, fmt.Errorf("queue %q: in flight: %w", q.n.queue, engine.Classify(err))
	}
	for subj := range si.State.Subjects {
		m, err := c.ledgerLast(ctx, subj)
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

// reportHeld records how many messages a Subscribe holds, until ttl.
func (c *Client) reportHeld(q *qstate, id string, held int, ttl time.Duration) {
	m := &nats.Msg{Subject: q.n.ledgerSub(id), Data: []byte(strconv.Itoa(held)),
		Header: nats.Header{jetstream.MsgTTLHeader: []string{ttlFor(ttl)}}}
	_, _ = c.js.PublishMsgAsync(m) // best effort: a missed report ages out with its TTL
}

// forgetLedger drops a deleted queue's ledger entries.
func (c *Client) forgetLedger(ctx context.Context, n *names) error {
	err := c.ledger.Purge(ctx, jetstream.WithPurgeSubject(n.ledgerAll()))
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("queue %q: ledger: %w", n.queue, engine.Classify(err))
	}
	return nil
}
