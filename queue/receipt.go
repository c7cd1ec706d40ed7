package queue

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"
)

// Receipts are "<base64url(ack subject)>.<base64url(meta)>.<base64url(hmac)>"
// where meta is the receipt's deadline (unix ms), its issuer (the client
// that handed the delivery out and settles it, holds.go) and the
// delivery's visibility timeout (ms). The HMAC, keyed with a secret every
// node shares through the engine, covers the queue name, the ack subject
// and meta, so a receipt cannot be forged nor used on another queue. The
// deadline is a little before the visibility timeout ends
// (ErrReceiptExpired after it); the ack subject names the delivery (its
// stream sequence and delivery count), which the issuer checks
// (ErrReceiptStale once it was nacked or delivered again).
type receiptMeta struct {
	reply    string
	deadline time.Time
	issuer   uint64
	vt       time.Duration
}

const metaLen = 20

// seal signs a receipt; the key was loaded by the caller (receiptKey).
func (b *Broker) seal(queue string, rm receiptMeta) string {
	var meta [metaLen]byte
	binary.BigEndian.PutUint64(meta[0:], uint64(rm.deadline.UnixMilli()))
	binary.BigEndian.PutUint64(meta[8:], rm.issuer)
	binary.BigEndian.PutUint32(meta[16:], uint32(rm.vt.Milliseconds()))
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(rm.reply)) + "." + enc.EncodeToString(meta[:]) + "." +
		enc.EncodeToString(b.mac(queue, rm.reply, meta[:]))
}

func (b *Broker) mac(queue, reply string, meta []byte) []byte {
	m, _ := b.macs.Get().(hash.Hash)
	if m == nil {
		m = hmac.New(sha256.New, *b.key.Load())
	}
	m.Reset() // back to the keyed state, without hashing the key again
	_, _ = io.WriteString(m, queue)
	m.Write([]byte{0})
	_, _ = io.WriteString(m, reply)
	m.Write([]byte{0})
	m.Write(meta)
	sum := m.Sum(make([]byte, 0, sha256.Size))[:16]
	b.macs.Put(m)
	return sum
}

// ackRef is what a verified receipt says.
type ackRef struct {
	receipt   string
	reply     string
	seq       uint64 // stream sequence
	delivered int
	priority  int
	issuer    uint64 // the client that settles it
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
	return ackRef{receipt: receipt, reply: string(reply), priority: int(md.consumer[1] - '0'), delivered: md.delivered, seq: md.seq,
		issuer: binary.BigEndian.Uint64(meta[8:]), vt: time.Duration(binary.BigEndian.Uint32(meta[16:])) * time.Millisecond}, nil
}

// openAll verifies every receipt (format, signature, queue, deadline).
func (b *Broker) openAll(ctx context.Context, q *qstate, receipts []string) ([]ackRef, error) {
	if _, err := b.receiptKey(ctx); err != nil {
		return nil, err
	}
	refs := make([]ackRef, len(receipts))
	for i, r := range receipts {
		var err error
		if refs[i], err = b.open(q, r); err != nil {
			return nil, err
		}
	}
	return refs, nil
}
