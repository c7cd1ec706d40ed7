package queue

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestHoldsExpiryMatchesAWalk drives the holds with random receives,
// redeliveries, acks, nacks, extends, undos and clock steps, and checks
// after every step that what the expiry heap keeps (and the held counts)
// is exactly what a walk over every hold, the way holds were swept
// before, would keep: nothing expires early, nothing expired is kept, and
// a replaced or extended hold's old entry changes nothing.
func TestHoldsExpiryMatchesAWalk(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	h := newHolds()
	now := time.Unix(1_000_000, 0)
	queues := []string{"a", "b"}
	prev := map[holdKey]*hold{}
	for step := range 20000 {
		q := queues[rng.IntN(len(queues))]
		seq := uint64(rng.IntN(50))
		switch op := rng.IntN(10); {
		case op < 3: // a delivery (a newer one replaces the older)
			vt := time.Duration(1+rng.IntN(5)) * time.Second
			h.add(q, []*Delivery{{seq: seq, Attempts: 1 + rng.IntN(3)}}, vt, rng.IntN(2) == 0, now)
		case op < 7: // ack, nack or extend a current delivery
			h.mu.Lock()
			hd := h.byQueue[q][seq]
			h.mu.Unlock()
			if hd == nil {
				continue
			}
			ref := ackRef{seq: seq, delivered: hd.delivered}
			h.settle(q, []ackRef{ref}, settleOp(rng.IntN(3)), 10*time.Second, now, true)
			if rng.IntN(4) == 0 {
				h.undo(q, []ackRef{ref})
			}
		default:
			now = now.Add(time.Duration(rng.IntN(1500)) * time.Millisecond)
			h.sweep(now)
		}
		checkHolds(t, step, h, now)
		prev = checkNoneEarly(t, step, h, now, prev)
	}
}

type holdKey struct {
	queue string
	seq   uint64
}

// checkNoneEarly: every hold that was there before the step and is gone
// now had its timeout (as extended) over.
func checkNoneEarly(t *testing.T, step int, h *holds, now time.Time, prev map[holdKey]*hold) map[holdKey]*hold {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, hd := range prev {
		if _, ok := h.byQueue[k.queue][k.seq]; !ok && !now.After(hd.end()) {
			t.Fatalf("step %d: %s/%d forgotten before its timeout ended", step, k.queue, k.seq)
		}
	}
	cur := map[holdKey]*hold{}
	for q, m := range h.byQueue {
		for seq, hd := range m {
			cur[holdKey{q, seq}] = hd
		}
	}
	return cur
}

func checkHolds(t *testing.T, step int, h *holds, now time.Time) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.expire(now)
	n := 0
	for q, m := range h.byQueue {
		held := 0
		for seq, hd := range m {
			if now.After(hd.end()) {
				t.Fatalf("step %d: %s/%d kept past its timeout", step, q, seq)
			}
			if hd.state == holdHeld {
				held++
			}
		}
		if held != h.held[q] {
			t.Fatalf("step %d: queue %s holds %d, counted %d", step, q, held, h.held[q])
		}
		n += len(m)
	}
	if n != h.n {
		t.Fatalf("step %d: %d holds, counted %d", step, n, h.n)
	}
	for q, c := range h.held {
		if _, ok := h.byQueue[q]; !ok && c != 0 {
			t.Fatalf("step %d: queue %s gone with %d counted", step, q, c)
		}
	}
}
