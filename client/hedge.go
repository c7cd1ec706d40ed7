package client

import (
	"math"
	"sync"
	"time"
)

// HedgePolicy configures hedged requests: when an idempotent call has not
// answered after the service's Percentile latency, a second attempt goes to
// another instance and the first good answer wins. Zero Percentile: off.
type HedgePolicy struct {
	// Percentile of recent latencies after which to hedge, e.g. 0.95.
	Percentile float64
	// MinDelay is the shortest hedge delay (also used until enough
	// latencies are known). Default 10ms.
	MinDelay time.Duration
	// Budget is the fraction of calls that may be hedged. Default 0.1.
	Budget float64
	// MinPerSecond hedges are allowed per second even with few calls.
	// Default 1.
	MinPerSecond float64
}

func (p *HedgePolicy) defaults() {
	if p.MinDelay <= 0 {
		p.MinDelay = 10 * time.Millisecond
	}
	if p.Budget <= 0 {
		p.Budget = 0.1
	}
	if p.MinPerSecond <= 0 {
		p.MinPerSecond = 1
	}
}

// latencyHist is a decaying log-scale histogram of a service's latencies,
// from 100µs growing by 10% per bucket (about 30 minutes at the top). Counts
// halve every halfLife observations, so percentiles follow recent traffic.
type latencyHist struct {
	mu     sync.Mutex
	counts [histBuckets]float64
	total  float64
	seen   int
}

const (
	histBuckets = 176
	histBase    = 100 * time.Microsecond
	histGrowth  = 1.1
	halfLife    = 1000
	minSamples  = 20
)

var logGrowth = math.Log(histGrowth)

func newLatencyHist() *latencyHist { return &latencyHist{} }

func bucketOf(d time.Duration) int {
	if d <= histBase {
		return 0
	}
	i := int(math.Log(float64(d)/float64(histBase))/logGrowth) + 1
	return min(i, histBuckets-1)
}

func bucketUpper(i int) time.Duration {
	return time.Duration(float64(histBase) * math.Pow(histGrowth, float64(i)))
}

func (h *latencyHist) observe(d time.Duration) {
	h.mu.Lock()
	h.counts[bucketOf(d)]++
	h.total++
	if h.seen++; h.seen >= halfLife {
		h.seen = 0
		h.total = 0
		for i := range h.counts {
			h.counts[i] /= 2
			h.total += h.counts[i]
		}
	}
	h.mu.Unlock()
}

// quantile returns the q-quantile's bucket upper bound, false with too few samples.
func (h *latencyHist) quantile(q float64) (time.Duration, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.total < minSamples {
		return 0, false
	}
	want := q * h.total
	var acc float64
	for i, c := range h.counts {
		if acc += c; acc >= want {
			return bucketUpper(i), true
		}
	}
	return bucketUpper(histBuckets - 1), true
}
