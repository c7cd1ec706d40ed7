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
	var sum [sha256.Size]byte
	mac := b.mac(sum[:0], queue, rm.reply, meta[:])
	enc := base64.RawURLEncoding
	out := make([]byte, 0, enc.EncodedLen(len(rm.reply))+enc.EncodedLen(metaLen)+enc.EncodedLen(len(mac))+2)
	out = enc.AppendEncode(out, []byte(rm.reply))
	out = append(out, '.')
	out = enc.AppendEncode(out, meta[:])
	out = append(out, '.')
	out = enc.AppendEncode(out, mac)
	return string(out)
}

// mac appends the receipt's 16-byte HMAC to dst.
func (b *Broker) mac(dst []byte, queue, reply string, meta []byte) []byte {
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
	n := len(dst)
	dst = m.Sum(dst)[:n+16]
	b.macs.Put(m)
	return dst
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
	p0, rest, ok1 := strings.Cut(receipt, ".")
	p1, p2, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(p2, ".") {
		return bad("malformed")
	}
	enc := base64.RawURLEncoding
	src := []byte(receipt)
	// The ack subject, meta and HMAC, decoded into one buffer.
	buf := make([]byte, 0, enc.DecodedLen(len(p0))+enc.DecodedLen(len(p1))+enc.DecodedLen(len(p2)))
	buf, err1 := enc.AppendDecode(buf, src[:len(p0)])
	reply := buf
	buf, err2 := enc.AppendDecode(buf, src[len(p0)+1:len(p0)+1+len(p1)])
	meta := buf[len(reply):]
	buf, err3 := enc.AppendDecode(buf, src[len(receipt)-len(p2):])
	sig := buf[len(reply)+len(meta):]
	if err1 != nil || err2 != nil || err3 != nil || len(meta) != metaLen {
		return bad("malformed")
	}
	var sum [sha256.Size]byte
	if !hmac.Equal(sig, b.mac(sum[:0], q.n.queue, string(reply), meta)) {
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
