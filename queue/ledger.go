package queue

import (
	"context"
	"encoding/json"
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
// LedgerStream, with entries per queue message and delivery (its delivery
// count, the engine's, which grows with every delivery of the message):
//
//	plexus.ql.<queue>.m.<seq>.h.<delivery>  held: "<visibility ms>", TTL = the visibility timeout
//	plexus.ql.<queue>.m.<seq>.a.<delivery>  acked with that delivery's receipt
//	plexus.ql.<queue>.m.<seq>.n.<delivery>  nacked with that delivery's receipt
//	plexus.ql.<queue>.s.<sub>               a Subscribe's held count, refreshed while it runs
//
// A receive writes the held entry; its ledger sequence goes into the
// receipt. The receipt's delivery is the current one exactly while that
// entry is the message's newest: a later delivery writes a newer held
// entry, an ack or a nack a marker. So ack, nack and extend are each one
// write that the engine makes only if it is (Nats-Expected-Last-Subject-
// Sequence over the message's entries): the check and the claim in one
// step, which only one caller can win. A stale receipt finds a newer entry
// and changes nothing. The held entries without a marker of their
// delivery count the queue's in-flight messages; they expire with the
// visibility timeout, the markers a second after it.
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

// Kinds of ledger entries of a delivery.
const (
	entryHeld   = 'h'
	entryAcked  = 'a'
	entryNacked = 'n'
)

// ledgerMsg prefixes the entries of the message at seq.
func (n *names) ledgerMsg(seq uint64) string {
	return ledgerRoot + n.tok + ".m." + strconv.FormatUint(seq, 10) + "."
}

func (n *names) ledgerEntry(seq uint64, kind byte, delivery int) string {
	return n.ledgerMsg(seq) + string(kind) + "." + strconv.Itoa(delivery)
}

func (n *names) ledgerOf(seq uint64) string { return n.ledgerMsg(seq) + ">" }
func (n *names) ledgerEntries() string      { return ledgerRoot + n.tok + ".m.*.*.*" }
func (n *names) ledgerSubs() string         { return ledgerRoot + n.tok + ".s.*" }
func (n *names) ledgerSub(id string) string {
	return ledgerRoot + n.tok + ".s." + id
}
func (n *names) ledgerAll() string { return ledgerRoot + n.tok + ".>" }

// entryOf reads a ledger subject: the message's sequence, the entry's kind
// and its delivery; ok is false for other subjects.
func entryOf(subj string) (seq uint64, kind byte, delivery int, ok bool) {
	i := strings.LastIndexByte(subj, '.')
	if i < 2 || subj[i-2] != '.' {
		return 0, 0, 0, false
	}
	d, err := strconv.Atoi(subj[i+1:])
	kind = subj[i-1]
	rest := subj[:i-2]
	j := strings.LastIndexByte(rest, '.')
	if err != nil || j < 2 || rest[j-2:j] != ".m" {
		return 0, 0, 0, false
	}
	seq, err = strconv.ParseUint(rest[j+1:], 10, 64)
	return seq, kind, d, err == nil
}

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

// heldEntry builds the held entry of a delivery; expect > 0 writes it only
// while that entry is the message's newest (extend).
func heldEntry(q *qstate, seq uint64, delivery int, vt time.Duration, expect uint64) *nats.Msg {
	h := nats.Header{jetstream.MsgTTLHeader: []string{ttlFor(vt)}}
	if expect > 0 {
		h[jetstream.ExpectedLastSubjSeqHeader] = []string{strconv.FormatUint(expect, 10)}
		h[jetstream.ExpectedLastSubjSeqSubjHeader] = []string{q.n.ledgerOf(seq)}
	}
	return &nats.Msg{Subject: q.n.ledgerEntry(seq, entryHeld, delivery), Header: h,
		Data: []byte(strconv.FormatInt(vt.Milliseconds(), 10))}
}

// markerEntry is the ack or nack marker of ref's delivery, written only
// while its held entry is the message's newest.
func markerEntry(q *qstate, ref ackRef, kind byte) *nats.Msg {
	h := nats.Header{
		jetstream.MsgTTLHeader:                  []string{ttlFor(ref.vt + time.Second)},
		jetstream.ExpectedLastSubjSeqHeader:     []string{strconv.FormatUint(ref.hseq, 10)},
		jetstream.ExpectedLastSubjSeqSubjHeader: []string{q.n.ledgerOf(ref.seq)},
	}
	return &nats.Msg{Subject: q.n.ledgerEntry(ref.seq, kind, ref.delivered), Header: h}
}

// hold writes the held entries of fresh deliveries, pipelined, and
// returns their ledger sequences.
func (c *Client) hold(ctx context.Context, q *qstate, ds []*Delivery, vt time.Duration) ([]uint64, error) {
	msgs := make([]*nats.Msg, len(ds))
	for i, d := range ds {
		msgs[i] = heldEntry(q, d.seq, d.Attempts, vt, 0)
	}
	out := make([]uint64, len(ds))
	for i, r := range c.writeLedger(ctx, msgs) {
		if r.err != nil {
			return nil, fmt.Errorf("queue %q: ledger: %w", q.n.queue, engine.Classify(r.err))
		}
		out[i] = r.seq
	}
	return out, nil
}

// ledgerWrite is the outcome of one ledger write.
type ledgerWrite struct {
	seq   uint64
	stale bool // the expected entry was not the newest
	err   error
}

// writeLedger publishes msgs pipelined and waits for every answer.
func (c *Client) writeLedger(ctx context.Context, msgs []*nats.Msg) []ledgerWrite {
	out := make([]ledgerWrite, len(msgs))
	futs := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		if futs[i], out[i].err = c.js.PublishMsgAsync(m); out[i].err != nil {
			for j := i + 1; j < len(msgs); j++ {
				out[j].err = out[i].err
			}
			msgs = msgs[:i]
			break
		}
	}
	for i := range msgs {
		select {
		case ack := <-futs[i].Ok():
			out[i].seq = ack.Sequence
		case err := <-futs[i].Err():
			var ae *jetstream.APIError
			if errors.As(err, &ae) && ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
				out[i].stale = true
			} else {
				out[i].err = err
			}
		case <-ctx.Done():
			out[i].err = ctx.Err()
		}
	}
	return out
}

// checkAll tells, for each receipt, whether its delivery is still the
// current one (nil), was acked with it already (errRepeat), or not
// (ErrReceiptStale): one read of the ledger for them all.
func (c *Client) checkAll(ctx context.Context, q *qstate, refs []ackRef) ([]error, error) {
	newest, err := c.newestEntries(ctx, q, refs)
	if err != nil {
		return nil, err
	}
	out := make([]error, len(refs))
	for i, ref := range refs {
		out[i] = verdict(ref, newest[ref.seq])
	}
	return out, nil
}

// entry is the newest ledger entry of a message.
type entry struct {
	lseq     uint64
	kind     byte
	delivery int
}

// verdict compares a receipt with its message's newest ledger entry.
func verdict(ref ackRef, e entry) error {
	switch {
	case e.lseq == ref.hseq:
		return nil
	case e.kind == entryAcked && e.delivery == ref.delivered:
		return errRepeat
	case e.lseq == 0:
		return fmt.Errorf("%w: the delivery's visibility timeout ended", ErrReceiptStale)
	}
	return fmt.Errorf("%w: the message was nacked, acknowledged or delivered again (attempt %d) since this receipt was issued",
		ErrReceiptStale, e.delivery)
}

// claimAll takes the receipts' deliveries for an ack or a nack (kind):
// each write succeeds only while its delivery is the current one. The
// error of a delivery someone else settled first is errRepeat or
// ErrReceiptStale.
func (c *Client) claimAll(ctx context.Context, q *qstate, refs []ackRef, kind byte) ([]error, error) {
	msgs := make([]*nats.Msg, len(refs))
	for i, ref := range refs {
		msgs[i] = markerEntry(q, ref, kind)
	}
	res := c.writeLedger(ctx, msgs)
	out := make([]error, len(refs))
	var lost []ackRef
	for i, r := range res {
		switch {
		case r.err != nil:
			return nil, fmt.Errorf("queue %q: ledger: %w", q.n.queue, engine.Classify(r.err))
		case r.stale:
			lost = append(lost, refs[i])
		}
	}
	if len(lost) == 0 {
		return out, nil
	}
	newest, err := c.newestEntries(ctx, q, lost)
	if err != nil {
		return nil, err
	}
	for i, r := range res {
		if r.stale {
			if out[i] = verdict(refs[i], newest[refs[i].seq]); out[i] == nil {
				out[i] = fmt.Errorf("%w: claimed by a concurrent request", ErrReceiptStale)
			}
		}
	}
	return out, nil
}

// multiLastMax bounds the subjects of one multi-subject read (the engine
// answers at most 1024 messages).
const multiLastMax = 256

// newestEntries reads the newest ledger entry of each receipt's message
// (none: zero), in direct reads of many messages at once.
func (c *Client) newestEntries(ctx context.Context, q *qstate, refs []ackRef) (map[uint64]entry, error) {
	out := make(map[uint64]entry, len(refs))
	var subjs []string
	for _, ref := range refs {
		if _, ok := out[ref.seq]; !ok {
			out[ref.seq] = entry{}
			subjs = append(subjs, q.n.ledgerOf(ref.seq))
		}
	}
	for len(subjs) > 0 {
		n := min(len(subjs), multiLastMax)
		if err := c.readNewest(ctx, subjs[:n], out); err != nil {
			return nil, fmt.Errorf("queue %q: ledger: %w", q.n.queue, engine.Classify(err))
		}
		subjs = subjs[n:]
	}
	return out, nil
}

// readNewest is one multi-subject direct read: the last message of every
// subject matching subjs, folded into the newest entry per message.
func (c *Client) readNewest(ctx context.Context, subjs []string, out map[uint64]entry) error {
	inbox := c.nc.NewRespInbox()
	sub, err := c.nc.SubscribeSync(inbox)
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	body, _ := json.Marshal(map[string]any{"multi_last": subjs, "batch": 1024})
	if err := c.nc.PublishRequest("$JS.API.DIRECT.GET."+LedgerStream, inbox, body); err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.RequestTimeout)
		defer cancel()
	}
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return err
		}
		switch st := m.Header.Get("Status"); st {
		case "":
		case "204", "404":
			return nil
		default:
			return fmt.Errorf("ledger read: status %s %s", st, m.Header.Get("Description"))
		}
		seq, kind, d, ok := entryOf(m.Header.Get(jetstream.SubjectHeader))
		lseq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
		if !ok || err != nil {
			continue // an entry of the first ledger layout: never a receipt's newest any more
		}
		if cur, seen := out[seq]; !seen || lseq > cur.lseq {
			out[seq] = entry{lseq: lseq, kind: kind, delivery: d}
		}
	}
}

// inFlight counts what receivers hold now: deliveries with a live held
// entry and no ack or nack marker, plus the counts Subscribe handlers
// report.
func (c *Client) inFlight(ctx context.Context, q *qstate) (int64, error) {
	si, err := c.ledger.Info(ctx, jetstream.WithSubjectFilter(q.n.ledgerEntries()))
	if err != nil {
		return 0, fmt.Errorf("queue %q: in flight: %w", q.n.queue, engine.Classify(err))
	}
	type delivery struct {
		seq uint64
		n   int
	}
	held := map[delivery]bool{}
	for subj := range si.State.Subjects {
		seq, kind, d, ok := entryOf(subj)
		if !ok {
			continue
		}
		k := delivery{seq, d}
		if kind == entryHeld {
			if _, settled := held[k]; !settled {
				held[k] = true
			}
		} else {
			held[k] = false
		}
	}
	var n int64
	for _, h := range held {
		if h {
			n++
		}
	}
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
