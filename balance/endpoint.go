package balance

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Tuning of the latency EWMA kept by every Endpoint.
const (
	// DecayTime is the time constant of the latency EWMA: an observation
	// weighs 1-exp(-Δt/DecayTime), and without observations the EWMA decays
	// towards zero with the same constant, so a once-slow endpoint is tried
	// again after a while instead of being starved forever.
	DecayTime = 10 * time.Second
	// FailurePenalty is the smallest latency recorded for a failed request:
	// End(latency, false) records max(latency, 2×EWMA, FailurePenalty), so a
	// backend that fails fast (connection refused) does not look fast.
	FailurePenalty = 250 * time.Millisecond
)

// epoch anchors the monotonic nanosecond clock of endpoints and pickers.
var epoch = time.Now()

func monoNow() int64 { return int64(time.Since(epoch)) }

// Endpoint is one pickable backend (an instance of a service) with its live
// load counters. It must be created with NewEndpoint and reused across Sets
// for as long as the instance exists, so that in-flight counts and latency
// history survive registry changes. All methods are safe for concurrent use.
type Endpoint struct {
	id     string
	weight int
	hash   uint64 // HashString(id): rendezvous hashing and round-robin order

	inflight atomic.Int64
	ewma     atomic.Int64 // nanoseconds, as of stamp
	stamp    atomic.Int64 // monoNow() of the last EWMA update; 0 = never

	mu  sync.Mutex   // serialises EWMA updates (End)
	now func() int64 // monotonic clock in ns; tests replace it
}

// NewEndpoint returns an endpoint with the given id (unique within a
// service) and weight. A weight below 1 counts as 1.
func NewEndpoint(id string, weight int) *Endpoint {
	if weight < 1 {
		weight = 1
	}
	return &Endpoint{id: id, weight: weight, hash: HashString(id), now: monoNow}
}

// ID returns the endpoint's id.
func (e *Endpoint) ID() string { return e.id }

// Weight returns the endpoint's weight (at least 1).
func (e *Endpoint) Weight() int { return e.weight }

// InFlight returns the number of requests begun and not yet ended.
func (e *Endpoint) InFlight() int64 { return e.inflight.Load() }

// EWMA returns the latency EWMA decayed to now; zero when nothing has been
// observed yet (or everything decayed away).
func (e *Endpoint) EWMA() time.Duration { return time.Duration(e.ewmaAt(e.now())) }

// Begin records the start of a request (in-flight +1). Every Begin must be
// followed by exactly one End.
func (e *Endpoint) Begin() { e.inflight.Add(1) }

// End records the end of a request begun with Begin: in-flight -1 and the
// latency folded into the peak EWMA. A failed request (ok false) is recorded
// as max(latency, 2×EWMA, FailurePenalty).
func (e *Endpoint) End(latency time.Duration, ok bool) {
	e.inflight.Add(-1)
	e.observe(int64(latency), ok)
}

// Cancel ends a request begun with Begin without observing its latency:
// for requests whose time went to their own client (a slow upload), which
// says nothing about the endpoint.
func (e *Endpoint) Cancel() { e.inflight.Add(-1) }

// ewmaAt returns the EWMA decayed to time now (ns on the monotonic clock).
func (e *Endpoint) ewmaAt(now int64) int64 {
	v := e.ewma.Load()
	if v == 0 {
		return 0
	}
	dt := now - e.stamp.Load()
	if dt <= 0 {
		return v
	}
	return int64(float64(v) * decay(dt))
}

// decay returns exp(-dt/DecayTime) for dt ≥ 0. Most calls see a dt of
// microseconds to milliseconds, where a Taylor polynomial is exact to 1e-6
// and several times cheaper than math.Exp.
func decay(dt int64) float64 {
	x := float64(dt) / float64(DecayTime)
	if x < 1.0/64 {
		return 1 - x + x*x/2
	}
	return math.Exp(-x)
}

// observe folds one latency sample into the peak EWMA: a sample above the
// current value replaces it at once (react to slowness immediately), a
// lower one pulls it down with weight 1-exp(-Δt/DecayTime).
func (e *Endpoint) observe(rtt int64, ok bool) {
	if rtt < 0 {
		rtt = 0
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	stamp := e.stamp.Load()
	cur := e.ewma.Load()
	if !ok {
		rtt = max(rtt, 2*e.ewmaAt(now), int64(FailurePenalty))
	}
	var next int64
	switch {
	case stamp == 0 && cur == 0:
		next = rtt
	case rtt >= cur:
		next = rtt
	default:
		w := decay(max(now-stamp, 0))
		next = int64(float64(cur)*w + float64(rtt)*(1-w))
	}
	if next < 1 {
		next = 1 // keep "observed" distinct from "never observed"
	}
	e.ewma.Store(next)
	e.stamp.Store(max(now, 1))
}
