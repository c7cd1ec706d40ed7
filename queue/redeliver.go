package queue

import (
	"fmt"
	"time"
)

// Failed attempts: a delivery handed back is redelivered after a delay
// that travels with the nak, counted as failed, and its error text is kept
// until the message is delivered again or dead-lettered.

// nakAfter returns a message for redelivery after delay. Consumer BackOff
// does not apply to naks, so the delay always travels with the nak.
func (b *Broker) nakAfter(reply string, delay time.Duration) error {
	if delay <= 0 {
		return b.nc.Publish(reply, []byte("-NAK"))
	}
	return b.nc.Publish(reply, fmt.Appendf(nil, `-NAK {"delay": %d}`, delay.Nanoseconds()))
}

func (b *Broker) failed(q *qstate, n int64) {
	q.failed.Add(n)
	q.m.failed.Add(float64(n))
}

func (b *Broker) rememberLastErr(seq uint64, s string) {
	b.lastErrMu.Lock()
	defer b.lastErrMu.Unlock()
	if len(b.lastErr) >= maxLastErr {
		for k := range b.lastErr { // evict an arbitrary entry: a bounded best-effort cache
			delete(b.lastErr, k)
			break
		}
	}
	b.lastErr[seq] = oneLine(s)
}

func (b *Broker) takeLastErr(seq uint64) string {
	b.lastErrMu.Lock()
	defer b.lastErrMu.Unlock()
	s := b.lastErr[seq]
	delete(b.lastErr, seq)
	return s
}
