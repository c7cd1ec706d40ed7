package queue

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Receipts are "<base64url(ack subject)>.<base64url(meta)>.<base64url(hmac)>"
// where meta is the receipt's deadline (unix ms), the delivery's ledger
// sequence and its visibility timeout (ms). The HMAC, keyed with a secret
// every node shares through the engine, covers the queue name, the ack
// subject and meta, so a receipt cannot be forged nor used on another
// queue. The deadline is a little before the visibility timeout ends
// (ErrReceiptExpired after it); the ledger sequence binds the receipt to
// its delivery (ErrReceiptStale once it was nacked or delivered again).
type receiptMeta struct {
	reply    string
	deadline time.Time
	hseq     uint64
	vt       time.Duration
}

const metaLen = 20

func (b *Broker) seal(queue string, rm receiptMeta) string {
	var meta [metaLen]byte
	binary.BigEndian.PutUint64(meta[0:], uint64(rm.deadline.UnixMilli()))
	binary.BigEndian.PutUint64(meta[8:], rm.hseq)
	binary.BigEndian.PutUint32(meta[16:], uint32(rm.vt.Milliseconds()))
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(rm.reply)) + "." + enc.EncodeToString(meta[:]) + "." +
		enc.EncodeToString(b.mac(queue, rm.reply, meta[:]))
}

func (b *Broker) mac(queue, reply string, meta []byte) []byte {
	m := hmac.New(sha256.New, b.key)
	m.Write([]byte(queue))
	m.Write([]byte{0})
	m.Write([]byte(reply))
	m.Write([]byte{0})
	m.Write(meta)
	return m.Sum(nil)[:16]
}

// ackRef is what a verified receipt says.
type ackRef struct {
	reply     string
	seq       uint64 // stream sequence
	delivered int
	priority  int
	hseq      uint64 // ledger sequence of the delivery's held entry
	vt        time.Duration
}

func (b *Broker) open(q *qstate, receipt string) (ackRef, error) {
	bad := func(why string) (ackRef, error) {
		return ackRef{}, fmt.Errorf("%w: %s", ErrInvalidReceipt, why)
	}
	if len(receipt) > 1024 {
		return bad("too long")
	}
	parts := strings.Split(receipt, ".")
	if len(parts) != 3 {
		return bad("malformed")
	}
	enc := base64.RawURLEncoding
	reply, err1 := enc.DecodeString(parts[0])
	meta, err2 := enc.DecodeString(parts[1])
	sig, err3 := enc.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || len(meta) != metaLen {
		return bad("malformed")
	}
	if !hmac.Equal(sig, b.mac(q.n.queue, string(reply), meta)) {
		return bad("not issued for this queue")
	}
	md, ok := parseAck(string(reply))
	if !ok || md.stream != q.n.stream || len(md.consumer) != 2 || md.consumer[0] != 'p' {
		return bad("not issued for this queue")
	}
	if b.opts.Clock.Now().UnixMilli() > int64(binary.BigEndian.Uint64(meta[0:])) {
		return ackRef{}, fmt.Errorf("%w: the visibility timeout ended; the message may have been delivered again", ErrReceiptExpired)
	}
	return ackRef{reply: string(reply), priority: int(md.consumer[1] - '0'), delivered: md.delivered, seq: md.seq,
		hseq: binary.BigEndian.Uint64(meta[8:]), vt: time.Duration(binary.BigEndian.Uint32(meta[16:])) * time.Millisecond}, nil
}

// openAll verifies every receipt and that each is its message's current
// delivery, before anything changes. repeat marks receipts whose delivery
// was acked with them already.
func (b *Broker) openAll(ctx context.Context, q *qstate, receipts []string, allowRepeat bool) (refs []ackRef, repeat []bool, err error) {
	refs = make([]ackRef, len(receipts))
	repeat = make([]bool, len(receipts))
	for i, r := range receipts {
		if refs[i], err = b.open(q, r); err != nil {
			return nil, nil, err
		}
	}
	for i, ref := range refs {
		switch err := b.check(ctx, q, ref); {
		case err == nil:
		case errors.Is(err, errRepeat) && allowRepeat:
			repeat[i] = true
		case errors.Is(err, errRepeat):
			return nil, nil, fmt.Errorf("%w: the message was acknowledged with it", ErrReceiptStale)
		default:
			return nil, nil, err
		}
	}
	return refs, repeat, nil
}
