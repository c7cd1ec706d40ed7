package client

import (
	"math"
	"sync"
	"time"
)

// budgetWindow is how far back a budget counts calls and retries.
const budgetWindow = 10 * time.Second

// Budget caps extra attempts (retries or hedges) to a fraction of calls plus
// a small floor per second, counted over a sliding 10-second window, so a
// total outage cannot multiply the load on a struggling service (the
// original retried every call three times). Safe for concurrent use.
type Budget struct {
	ratio  float64
	floor  float64 // extra attempts allowed per window regardless of calls
	now    func() time.Time
	mu     sync.Mutex
	bucket [10]budgetBucket // one per second of the window
}

type budgetBucket struct {
	sec            int64
	calls, retries int64
}

// NewBudget allows ratio extra attempts per call plus minPerSecond per second.
// now may be nil (time.Now).
func NewBudget(ratio float64, minPerSecond float64, now func() time.Time) *Budget {
	if now == nil {
		now = time.Now
	}
	return &Budget{ratio: ratio, floor: minPerSecond * budgetWindow.Seconds(), now: now}
}

func (b *Budget) cur() *budgetBucket {
	sec := b.now().Unix()
	bk := &b.bucket[sec%int64(len(b.bucket))]
	if bk.sec != sec {
		*bk = budgetBucket{sec: sec}
	}
	return bk
}

// Deposit records one call (a first attempt).
func (b *Budget) Deposit() {
	b.mu.Lock()
	b.cur().calls++
	b.mu.Unlock()
}

// Withdraw takes one extra attempt from the budget, reporting whether it
// was available.
func (b *Budget) Withdraw() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	bk := b.cur()
	oldest := bk.sec - int64(len(b.bucket)) + 1
	var calls, retries int64
	for i := range b.bucket {
		if b.bucket[i].sec >= oldest {
			calls += b.bucket[i].calls
			retries += b.bucket[i].retries
		}
	}
	if float64(retries+1) > math.Floor(b.ratio*float64(calls)+b.floor) {
		return false
	}
	bk.retries++
	return true
}
