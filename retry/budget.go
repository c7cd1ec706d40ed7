package retry

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/plexushq/plexus/clock"
)

// Window is the span a Budget counts requests and retries over.
const Window = 10 * time.Second

// Defaults of a Budget.
const (
	DefaultRatio        = 0.2
	DefaultMinPerSecond = 1.0
)

// Budget caps retries (or hedges) to a fraction of requests over the last
// Window, plus a floor per second (see the package doc). It is safe for
// concurrent use, lock-free, and allocates nothing.
type Budget struct {
	ratio float64
	floor float64 // retries allowed per window regardless of requests
	clk   clock.Clock
	sys   bool
	slots [10]slot // one per second of the window
}

// slot counts one second. sec is the unix second it counts, or 0.
type slot struct {
	sec               atomic.Int64
	requests, retries atomic.Int64
}

// NewBudget allows ratio retries per request plus minPerSecond per second,
// over the last Window (negative values count as 0; callers apply their
// defaults); clk nil is the wall clock.
func NewBudget(ratio, minPerSecond float64, clk clock.Clock) *Budget {
	return &Budget{ratio: max(ratio, 0), floor: max(minPerSecond, 0) * Window.Seconds(),
		clk: clock.Or(clk), sys: clock.IsSystem(clk)}
}

func (b *Budget) now() int64 {
	if b.sys {
		return time.Now().Unix()
	}
	return b.clk.Now().Unix()
}

// at returns the slot of second sec, reset when it last counted an older
// second. Two callers resetting at once may lose a count of that moment:
// the budget is an estimate, and errs by at most that.
func (b *Budget) at(sec int64) *slot {
	s := &b.slots[sec%int64(len(b.slots))]
	if old := s.sec.Load(); old != sec && s.sec.CompareAndSwap(old, sec) {
		s.requests.Store(0)
		s.retries.Store(0)
	}
	return s
}

// Deposit records one request (a first attempt).
func (b *Budget) Deposit() { b.at(b.now()).requests.Add(1) }

// Withdraw takes one retry from the budget, reporting whether it was
// available.
func (b *Budget) Withdraw() bool {
	sec := b.now()
	cur := b.at(sec)
	var requests, others int64
	for i := range b.slots {
		s := &b.slots[i]
		if age := sec - s.sec.Load(); age < 0 || age >= int64(len(b.slots)) {
			continue
		}
		requests += s.requests.Load()
		if s != cur {
			others += s.retries.Load()
		}
	}
	allowed := int64(math.Floor(b.ratio*float64(requests) + b.floor))
	for {
		r := cur.retries.Load()
		if others+r+1 > allowed {
			return false
		}
		if cur.retries.CompareAndSwap(r, r+1) {
			return true
		}
	}
}
