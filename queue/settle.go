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

	"github.com/plexushq/plexus/engine"
)

// settleArgs are a nack's error text and delay.
type settleArgs struct {
	errText string
	delay   time.Duration
}

// settled is the outcome of settling receipts: per receipt nil or
// errRepeat, and an extend's fresh receipts.
type settled struct {
	verdicts []error
	receipts []string
}

// settle settles refs with op (holds.go): at this client for the receipts
// it issued, at their issuer for the others. Receipts of several issuers
// are all checked before any is settled. A receipt that cannot be settled
// fails the whole call and nothing changes.
func (b *Broker) settle(ctx context.Context, q *qstate, refs []ackRef, op settleOp, args settleArgs) (settled, error) {
	issuers := map[uint64][]int{}
	for i, ref := range refs {
		issuers[ref.issuer] = append(issuers[ref.issuer], i)
	}
	if len(issuers) == 1 {
		if refs[0].issuer == b.holds.id {
			return b.settleHere(ctx, q, refs, op, args)
		}
		return b.settleAt(ctx, q, refs[0].issuer, refs, op, args, false)
	}
	for issuer, idx := range issuers { // check every group first
		group := pick(refs, idx)
		var err error
		if issuer == b.holds.id {
			_, err = b.settleCheck(q, group, op)
		} else {
			_, err = b.settleAt(ctx, q, issuer, group, op, args, true)
		}
		if err != nil {
			return settled{}, err
		}
	}
	out := settled{verdicts: make([]error, len(refs))}
	if op == opExtend {
		out.receipts = make([]string, len(refs))
	}
	for issuer, idx := range issuers {
		group := pick(refs, idx)
		var s settled
		var err error
		if issuer == b.holds.id {
			s, err = b.settleHere(ctx, q, group, op, args)
		} else {
			s, err = b.settleAt(ctx, q, issuer, group, op, args, false)
		}
		if err != nil {
			return settled{}, err
		}
		for j, i := range idx {
			out.verdicts[i] = s.verdicts[j]
			if op == opExtend {
				out.receipts[i] = s.receipts[j]
			}
		}
	}
	return out, nil
}

func pick(refs []ackRef, idx []int) []ackRef {
	out := make([]ackRef, len(idx))
	for j, i := range idx {
		out[j] = refs[i]
	}
	return out
}

// settleCheck decides without changing anything.
func (b *Broker) settleCheck(q *qstate, refs []ackRef, op settleOp) ([]error, error) {
	verdicts, ok := b.holds.settle(q.n.queue, refs, op, q.cfg.Load().VisibilityTimeout, b.opts.Clock.Now(), false)
	if !ok {
		return nil, firstFailure(verdicts)
	}
	return verdicts, nil
}

func firstFailure(verdicts []error) error {
	for _, v := range verdicts {
		if v != nil && v != errRepeat {
			return v
		}
	}
	return nil
}

// settleHere settles receipts this client issued: decided under the
// holds' lock, then sent to the engine.
func (b *Broker) settleHere(ctx context.Context, q *qstate, refs []ackRef, op settleOp, args settleArgs) (settled, error) {
	now := b.opts.Clock.Now()
	verdicts, ok := b.holds.settle(q.n.queue, refs, op, q.cfg.Load().VisibilityTimeout, now, true)
	if !ok {
		return settled{}, firstFailure(verdicts)
	}
	out := settled{verdicts: verdicts}
	var err error
	switch op {
	case opAck:
		err = b.applyAck(ctx, q, refs, verdicts)
	case opNack:
		err = b.nack(ctx, q, refs[0], nil, args.errText, args.delay)
	case opExtend:
		out.receipts, err = b.applyExtend(ctx, q, refs, now)
	}
	if err != nil {
		var fresh []ackRef
		for i, ref := range refs {
			if verdicts[i] == nil {
				fresh = append(fresh, ref)
			}
		}
		b.holds.undo(q.n.queue, fresh)
		return settled{}, err
	}
	return out, nil
}

// applyAck acknowledges settled deliveries (a repeat again: the delivery
// is still this receipt's, so this is safe if the first ack was lost) and
// counts each message once. It waits for the engine to confirm every ack,
// so that the message is gone when the caller hears it was acknowledged.
func (b *Broker) applyAck(ctx context.Context, q *qstate, refs []ackRef, verdicts []error) error {
	if err := b.ackSync(ctx, refs); err != nil {
		return fmt.Errorf("queue %q: ack: %w", q.n.queue, engine.Classify(err))
	}
	var acked int64
	for _, v := range verdicts {
		if v == nil {
			acked++
		}
	}
	b.processed(q, acked)
	return nil
}

// ackSync sends the acks pipelined, each asking for the engine's
// confirmation on a puller's inbox (pull.go), and waits for them all.
func (b *Broker) ackSync(ctx context.Context, refs []ackRef) error {
	p, err := b.pullers.get()
	if err != nil {
		return err
	}
	p.req++
	base := p.inbox + "." + strconv.FormatUint(p.req, 36) + "_"
	for i, ref := range refs {
		if err := b.nc.PublishRequest(ref.reply, base+strconv.Itoa(i), ackBody); err != nil {
			b.pullers.put(p, false)
			return err
		}
	}
	timer := time.NewTimer(b.opts.RequestTimeout)
	defer timer.Stop()
	got := make([]bool, len(refs))
	for n := 0; n < len(refs); {
		select {
		case m := <-p.ch:
			i, err := strconv.Atoi(strings.TrimPrefix(m.Subject, base))
			if !strings.HasPrefix(m.Subject, base) || err != nil || i < 0 || i >= len(got) || got[i] {
				continue // an answer to an earlier request
			}
			got[i] = true
			n++
		case <-timer.C:
			b.pullers.put(p, false)
			return fmt.Errorf("%w: the engine did not confirm the acks", nats.ErrTimeout)
		case <-ctx.Done():
			b.pullers.put(p, false)
			return ctx.Err()
		}
	}
	b.pullers.put(p, true)
	return nil
}

// applyExtend restarts the deliveries' visibility timeouts (with the
// length they were received with) and seals their fresh receipts.
func (b *Broker) applyExtend(ctx context.Context, q *qstate, refs []ackRef, now time.Time) ([]string, error) {
	qvt := q.cfg.Load().VisibilityTimeout
	out := make([]string, len(refs))
	for i, ref := range refs {
		var err error
		if ref.vt == qvt {
			err = b.nc.Publish(ref.reply, progressBody)
		} else {
			err = b.nakAfter(ref.reply, ref.vt)
		}
		if err != nil {
			return nil, fmt.Errorf("queue %q: extend: %w", q.n.queue, engine.Classify(err))
		}
		out[i] = b.seal(q.n.queue, receiptMeta{reply: ref.reply, deadline: now.Add(ref.vt * 95 / 100), issuer: b.holds.id, vt: ref.vt})
	}
	return out, b.flush(ctx)
}

// The request another client sends to a receipt's issuer.
type settleRequest struct {
	Op       settleOp `json:"op"`
	Check    bool     `json:"check,omitempty"` // decide only
	Queue    string   `json:"queue"`
	Receipts []string `json:"receipts"`
	Error    string   `json:"error,omitempty"`
	Delay    int64    `json:"delay,omitempty"`
}

type settleReply struct {
	Verdicts []string `json:"verdicts,omitempty"` // per receipt: "" or "repeat"
	Receipts []string `json:"receipts,omitempty"`
	Error    string   `json:"error,omitempty"`
	Kind     string   `json:"kind,omitempty"` // the error's sentinel: stale, expired, invalid, busy
}

func settleSubject(issuer uint64) string {
	return "plexus.qr." + strconv.FormatUint(issuer, 36)
}

// settleAt asks the receipts' issuer to settle (or only check) them.
func (b *Broker) settleAt(ctx context.Context, q *qstate, issuer uint64, refs []ackRef, op settleOp, args settleArgs, check bool) (settled, error) {
	req := settleRequest{Op: op, Check: check, Queue: q.n.queue, Error: args.errText, Delay: int64(args.delay)}
	for _, ref := range refs {
		req.Receipts = append(req.Receipts, ref.receipt)
	}
	body, _ := json.Marshal(req)
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.opts.RequestTimeout)
		defer cancel()
	}
	m, err := b.nc.RequestWithContext(ctx, settleSubject(issuer), body)
	if errors.Is(err, nats.ErrNoResponders) {
		return settled{}, fmt.Errorf("%w: the node that issued this receipt is gone (restarted); the message comes back after its visibility timeout", ErrReceiptStale)
	}
	if err != nil {
		return settled{}, fmt.Errorf("queue %q: settle: %w", q.n.queue, engine.Classify(err))
	}
	var rep settleReply
	if err := json.Unmarshal(m.Data, &rep); err != nil {
		return settled{}, fmt.Errorf("queue %q: settle: %w", q.n.queue, err)
	}
	if rep.Error != "" {
		return settled{}, replyError(rep)
	}
	out := settled{verdicts: make([]error, len(refs)), receipts: rep.Receipts}
	for i := range out.verdicts {
		if i < len(rep.Verdicts) && rep.Verdicts[i] == "repeat" {
			out.verdicts[i] = errRepeat
		}
	}
	return out, nil
}

// Sentinels a settle reply can carry.
var replyKinds = map[string]error{
	"stale": ErrReceiptStale, "expired": ErrReceiptExpired, "invalid": ErrInvalidReceipt, "busy": ErrBusy,
	"not-found": ErrQueueNotFound,
}

func replyError(rep settleReply) error {
	if sentinel, ok := replyKinds[rep.Kind]; ok {
		if errors.Is(sentinel, ErrQueueNotFound) {
			return notFound(strings.TrimPrefix(rep.Error, "Queue not found: "))
		}
		return fmt.Errorf("%w: %s", sentinel, rep.Error)
	}
	return fmt.Errorf("queue: settle at the issuing node: %s", rep.Error)
}

// serveSettle answers the requests of other clients for receipts this
// client issued.
func (b *Broker) serveSettle(m *nats.Msg) {
	var req settleRequest
	rep := settleReply{}
	if err := json.Unmarshal(m.Data, &req); err != nil {
		rep.Error, rep.Kind = "malformed settle request", "invalid"
	} else if err := b.settleFor(&req, &rep); err != nil {
		rep.Error = err.Error()
		for kind, sentinel := range replyKinds {
			if errors.Is(err, sentinel) {
				rep.Kind = kind
			}
		}
	}
	data, _ := json.Marshal(rep)
	_ = m.Respond(data)
}

func (b *Broker) settleFor(req *settleRequest, rep *settleReply) error {
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.RequestTimeout)
	defer cancel()
	q, err := b.state(ctx, req.Queue)
	if err != nil {
		return err
	}
	refs, err := b.openAll(ctx, q, req.Receipts)
	if err != nil {
		return err
	}
	for _, ref := range refs {
		if ref.issuer != b.holds.id {
			return fmt.Errorf("%w: not issued by this node", ErrReceiptStale)
		}
	}
	var verdicts []error
	if req.Check {
		verdicts, err = b.settleCheck(q, refs, req.Op)
	} else {
		var s settled
		s, err = b.settleHere(ctx, q, refs, req.Op, settleArgs{errText: req.Error, delay: time.Duration(req.Delay)})
		verdicts, rep.Receipts = s.verdicts, s.receipts
	}
	if err != nil {
		return err
	}
	rep.Verdicts = make([]string, len(verdicts))
	for i, v := range verdicts {
		if v == errRepeat {
			rep.Verdicts[i] = "repeat"
		}
	}
	return nil
}
