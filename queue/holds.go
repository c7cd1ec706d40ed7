package queue

import (
	"container/heap"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// A receipt is settled by the client that issued it. JetStream acks,
// nacks and extends by stream sequence whoever holds the message, so an
// older delivery's receipt would act on the current one (ack a message
// another receiver holds, or hand it to a third). The issuing client
// remembers, in memory, every delivery it handed out with a receipt: the
// message's stream sequence, the delivery's count (the engine's, which
// grows with every delivery of the message and travels in the receipt's
// ack subject) and whether it was acked or nacked. An ack, nack or extend
// is decided there, under one lock, before anything is sent to the
// engine: a receipt whose delivery was settled already (nacked, or acked
// and then used for something else) or replaced by a newer delivery of
// this client is ErrReceiptStale and changes nothing; acking again with
// the same receipt is harmless and counted once.
//
// A newer delivery by another client can only follow a nack, which the
// issuer recorded, or the end of the visibility timeout, past which the
// receipt has expired (its deadline is 95 % of the timeout, and shorter
// when the queue's timeout was shortened since). So no engine write is
// needed per delivery: the ledger of the first version (a held entry per
// receive, a claim and a marker per ack) cost three engine operations per
// message.
//
// A receipt names its issuer; another client (another node) passes the
// request on to it over the engine's connection (subject
// plexus.qr.<issuer>). A receipt whose issuer is gone (restarted) is
// stale: nothing changes, and its message comes back after the timeout.

// maxHolds bounds the deliveries a client remembers at once; past it a
// receive is ErrBusy until receipts are settled or expire.
const maxHolds = 1 << 20

type holdState uint8

const (
	holdHeld holdState = iota
	holdAcked
	holdNacked
)

// hold is one delivery handed out with a receipt.
type hold struct {
	delivered int
	state     holdState
	received  time.Time     // the receive, or the last extend
	vt        time.Duration // the delivery's visibility timeout
	ownVT     bool          // set by the receive (a nak delay), not the queue's
}

// holds are a client's outstanding deliveries, per queue and stream
// sequence.
type holds struct {
	id  uint64 // this client's issuer id: random, new at every start
	max int    // deliveries held at most (maxHolds)

	mu       sync.Mutex
	byQueue  map[string]map[uint64]*hold
	n        int
	held     map[string]int // per queue, holds in state holdHeld
	expiry   expiries       // every hold, by the end of its visibility timeout
	reported map[string]int // counts last written to the ledger
}

func newHolds() *holds {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &holds{id: binary.BigEndian.Uint64(b[:]) | 1, max: maxHolds, byQueue: map[string]map[uint64]*hold{}, held: map[string]int{}, reported: map[string]int{}}
}

func (h *holds) idString() string { return strconv.FormatUint(h.id, 36) }

// room reports whether n more deliveries can be held.
func (h *holds) room(n int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n+n <= h.max
}

// add records fresh deliveries; a newer delivery of a message replaces the
// older one.
func (h *holds) add(queue string, ds []*Delivery, vt time.Duration, ownVT bool, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.byQueue[queue]
	if m == nil {
		m = map[uint64]*hold{}
		h.byQueue[queue] = m
	}
	for _, d := range ds {
		if old, ok := m[d.seq]; !ok {
			h.n++
		} else if old.state == holdHeld {
			h.held[queue]--
		}
		hd := &hold{delivered: d.Attempts, received: now, vt: vt, ownVT: ownVT}
		m[d.seq] = hd
		h.held[queue]++
		heap.Push(&h.expiry, expiry{at: hd.end(), queue: queue, seq: d.seq, hd: hd})
	}
}

// end is when the delivery's visibility timeout ends.
func (hd *hold) end() time.Time { return hd.received.Add(hd.vt) }

// settleOp is what a receipt is used for.
type settleOp uint8

const (
	opAck settleOp = iota
	opNack
	opExtend
)

// verdict tells whether ref's delivery can be settled with op now (nil),
// was acked with it already (errRepeat, for an ack), or not. Caller holds mu.
func (h *holds) verdict(queue string, ref ackRef, op settleOp, qvt time.Duration, now time.Time) (*hold, error) {
	hd := h.byQueue[queue][ref.seq]
	switch {
	case hd == nil:
		return nil, fmt.Errorf("%w: this node no longer knows the delivery", ErrReceiptStale)
	case hd.delivered != ref.delivered:
		return nil, fmt.Errorf("%w: the message was delivered again (attempt %d) since this receipt was issued", ErrReceiptStale, hd.delivered)
	case hd.state == holdNacked:
		return nil, fmt.Errorf("%w: the message was nacked with it", ErrReceiptStale)
	case hd.state == holdAcked && op == opAck:
		return hd, errRepeat
	case hd.state == holdAcked:
		return nil, fmt.Errorf("%w: the message was acknowledged with it", ErrReceiptStale)
	case !hd.ownVT && qvt < hd.vt && now.After(hd.received.Add(qvt*95/100)):
		// The queue's timeout was shortened: the engine redelivers sooner.
		return nil, fmt.Errorf("%w: the visibility timeout ended; the message may have been delivered again", ErrReceiptExpired)
	}
	return hd, nil
}

// settle decides op for every ref: when all can be settled (repeats of an
// ack included) and commit is set, it records the outcome; otherwise it
// changes nothing. out[i] is nil, errRepeat or the reason it cannot.
func (h *holds) settle(queue string, refs []ackRef, op settleOp, qvt time.Duration, now time.Time, commit bool) (out []error, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out = make([]error, len(refs))
	hds := make([]*hold, len(refs))
	ok = true
	for i, ref := range refs {
		hds[i], out[i] = h.verdict(queue, ref, op, qvt, now)
		if out[i] != nil && out[i] != errRepeat {
			ok = false
		}
	}
	if !ok || !commit {
		return out, ok
	}
	for i, hd := range hds {
		if out[i] != nil {
			continue
		}
		switch op {
		case opAck:
			hd.state = holdAcked
			h.held[queue]--
		case opNack:
			hd.state = holdNacked
			h.held[queue]--
		case opExtend:
			hd.received = now // its expiry entry is moved when it comes due
		}
	}
	return out, ok
}

// undo returns deliveries to held after their engine operation failed.
func (h *holds) undo(queue string, refs []ackRef) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ref := range refs {
		if hd := h.byQueue[queue][ref.seq]; hd != nil && hd.delivered == ref.delivered && hd.state != holdHeld {
			hd.state = holdHeld
			h.held[queue]++
		}
	}
}

// count is how many of queue's deliveries are held now: not settled, and
// within their visibility timeout (the engine's, a little longer than
// their receipts').
func (h *holds) count(queue string, now time.Time) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.countLocked(queue, now)
}

func (h *holds) countLocked(queue string, now time.Time) int {
	h.expire(now)
	return h.held[queue]
}

// expire forgets the deliveries whose visibility timeout ended by now
// (their receipts expired before), in the order they end: the work is
// proportional to what expires, not to what is held, so the lock every
// receive and ack takes is never held for a walk over a million holds.
// Caller holds mu.
func (h *holds) expire(now time.Time) {
	for len(h.expiry) > 0 && h.expiry[0].at.Before(now) {
		e := heap.Pop(&h.expiry).(expiry)
		m := h.byQueue[e.queue]
		if m[e.seq] != e.hd {
			continue // replaced by a newer delivery, which has its own entry
		}
		if end := e.hd.end(); !now.After(end) { // extended since: due later
			e.at = end
			heap.Push(&h.expiry, e)
			continue
		}
		delete(m, e.seq)
		h.n--
		if e.hd.state == holdHeld {
			h.held[e.queue]--
		}
		if len(m) == 0 {
			delete(h.byQueue, e.queue)
			delete(h.held, e.queue)
		}
	}
}

// sweep forgets the deliveries whose visibility timeout ended, and
// returns the queues whose held count must be reported (changed since the
// last report, or not zero).
func (h *holds) sweep(now time.Time) map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.expire(now)
	report := map[string]int{}
	for q := range h.byQueue {
		if n := h.held[q]; n > 0 || h.reported[q] > 0 {
			report[q] = n
		}
	}
	for q, n := range h.reported {
		if _, ok := report[q]; !ok && n > 0 {
			report[q] = 0 // the queue's last holds expired: say so once
		}
	}
	for q := range h.reported {
		if _, ok := report[q]; !ok {
			delete(h.reported, q)
		}
	}
	for q, n := range report {
		h.reported[q] = n
	}
	return report
}

// holdsReport is how often a client sweeps its holds and tells the other
// nodes (through the ledger) how many messages its receivers hold.
const holdsReport = time.Second

// runHolds sweeps and reports until stop is closed.
func (b *Broker) runHolds(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(holdsReport)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			for queue, n := range b.holds.sweep(b.opts.Clock.Now()) {
				b.reportHeld(namesFor(queue), "r"+b.holds.idString(), n, 3*holdsReport)
			}
		}
	}
}

// errHoldsBusy is ErrBusy for a client that holds too many deliveries.
func (h *holds) busy() error {
	return fmt.Errorf("%w: %d messages are held by receivers of this node", ErrBusy, h.max)
}

// expiry is a hold's entry in the expiry heap; hd tells a replaced hold's
// stale entry from the current one.
type expiry struct {
	at    time.Time
	queue string
	seq   uint64
	hd    *hold
}

// expiries is a min-heap of expiry by at (container/heap).
type expiries []expiry

func (e expiries) Len() int           { return len(e) }
func (e expiries) Less(i, j int) bool { return e[i].at.Before(e[j].at) }
func (e expiries) Swap(i, j int)      { e[i], e[j] = e[j], e[i] }
func (e *expiries) Push(x any)        { *e = append(*e, x.(expiry)) }
func (e *expiries) Pop() any {
	old := *e
	x := old[len(old)-1]
	old[len(old)-1] = expiry{}
	*e = old[:len(old)-1]
	return x
}
