package telemetry

import (
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// raw is what one gathering keeps of the registry: cumulative counters and
// histogram buckets (for rates) and gauges, keyed by service, queue, group.
type raw struct {
	at       time.Time            // when it was gathered (set by sample)
	requests map[string]float64   // service → requests_total
	errors   map[string]float64   // service → requests_total with a 5xx code
	buckets  map[string][]bucket  // service → cumulative latency buckets
	breakers map[string]string    // service → state
	queues   map[string]*QueueRow // queue → depths
	appended float64
	lastPos  float64
	lags     map[string]float64 // group → lag
	hasEvent bool
}

type bucket struct{ upper, count float64 }

// sample is one point of the history.
type sample struct {
	at       time.Time
	services map[string]serviceRow
	queues   map[string]*QueueRow
	lags     map[string]float64
	appendPS *float64
	lastPos  *float64
}

type serviceRow struct {
	requests, errors, p50, p99 *float64
	breaker                    string
}

// QueueRow is one queue's depths in a sample.
type QueueRow struct {
	Ready, Delayed, InFlight, DeadLetters float64
}

func label(m *dto.Metric, name string) string {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name {
			return lp.GetValue()
		}
	}
	return ""
}

// keep reports whether key may be added to m without passing max entries.
func keep[V any](m map[string]V, key string, max int) bool {
	_, ok := m[key]
	return ok || len(m) < max
}

func readRaw(mfs []*dto.MetricFamily, max int) *raw {
	r := &raw{requests: map[string]float64{}, errors: map[string]float64{}, buckets: map[string][]bucket{},
		breakers: map[string]string{}, queues: map[string]*QueueRow{}, lags: map[string]float64{}}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			r.add(mf.GetName(), m, max)
		}
	}
	return r
}

func (r *raw) add(name string, m *dto.Metric, max int) {
	switch name {
	case "plexus_gateway_requests_total":
		svc := label(m, "service")
		if svc == "none" || !keep(r.requests, svc, max) {
			return
		}
		r.requests[svc] += m.GetCounter().GetValue()
		if strings.HasPrefix(label(m, "http_response_status_code"), "5") {
			r.errors[svc] += m.GetCounter().GetValue()
		}
	case "plexus_gateway_request_duration_seconds":
		svc := label(m, "service")
		if svc == "none" || !keep(r.buckets, svc, max) {
			return
		}
		r.buckets[svc] = addBuckets(r.buckets[svc], m.GetHistogram())
	case "plexus_gateway_breaker_state":
		if svc := label(m, "service"); m.GetGauge().GetValue() == 1 && keep(r.breakers, svc, max) {
			r.breakers[svc] = label(m, "state")
		}
	case "plexus_queue_messages", "plexus_queue_dead_letters":
		q := label(m, "queue")
		if !keep(r.queues, q, max) {
			return
		}
		row := r.queues[q]
		if row == nil {
			row = &QueueRow{}
			r.queues[q] = row
		}
		v := m.GetGauge().GetValue()
		switch label(m, "state") {
		case "ready":
			row.Ready = v
		case "delayed":
			row.Delayed = v
		case "in_flight":
			row.InFlight = v
		case "":
			row.DeadLetters = v
		}
	case "plexus_events_appended_total":
		r.appended, r.hasEvent = m.GetCounter().GetValue(), true
	case "plexus_events_last_position":
		r.lastPos, r.hasEvent = m.GetGauge().GetValue(), true
	case "plexus_events_subscription_lag":
		if g := label(m, "group"); keep(r.lags, g, max) {
			r.lags[g] = m.GetGauge().GetValue()
		}
	}
}

// addBuckets adds h's cumulative buckets to acc (same bucket layout for
// every series of one histogram family).
func addBuckets(acc []bucket, h *dto.Histogram) []bucket {
	bs := h.GetBucket()
	if acc == nil {
		acc = make([]bucket, len(bs)+1)
		for i, b := range bs {
			acc[i].upper = b.GetUpperBound()
		}
		acc[len(bs)].upper = math.Inf(1)
	}
	if len(acc) != len(bs)+1 {
		return acc
	}
	for i, b := range bs {
		acc[i].count += float64(b.GetCumulativeCount())
	}
	acc[len(bs)].count += float64(h.GetSampleCount())
	return acc
}

// delta is a counter's increase since prev; a smaller value is a reset.
func delta(cur, prev float64) float64 {
	if cur < prev {
		return cur
	}
	return cur - prev
}

func (r *raw) sample(now time.Time, prev *raw) *sample {
	s := &sample{at: now, services: map[string]serviceRow{}, queues: r.queues, lags: r.lags}
	var secs float64
	if prev != nil {
		secs = now.Sub(prevAt(prev, now)).Seconds()
	}
	names := map[string]bool{}
	for svc := range r.requests {
		names[svc] = true
	}
	for svc := range r.breakers {
		names[svc] = true
	}
	for svc := range names {
		row := serviceRow{breaker: r.breakers[svc]}
		if prev != nil && secs > 0 {
			if p, ok := prev.requests[svc]; ok {
				row.requests = ptr(delta(r.requests[svc], p) / secs)
				row.errors = ptr(delta(r.errors[svc], prev.errors[svc]) / secs)
			} else if _, ok := r.requests[svc]; ok {
				row.requests = ptr(r.requests[svc] / secs) // the service's first requests
				row.errors = ptr(r.errors[svc] / secs)
			}
			diff := diffBuckets(r.buckets[svc], prev.buckets[svc])
			row.p50, row.p99 = quantile(0.5, diff), quantile(0.99, diff)
		}
		s.services[svc] = row
	}
	if r.hasEvent {
		s.lastPos = ptr(r.lastPos)
		if prev != nil && prev.hasEvent && secs > 0 {
			s.appendPS = ptr(delta(r.appended, prev.appended) / secs)
		}
	}
	r.at = now
	return s
}

// prevAt is when prev was gathered (set by sample).
func prevAt(prev *raw, now time.Time) time.Time {
	if prev.at.IsZero() {
		return now
	}
	return prev.at
}

func ptr(v float64) *float64 { return &v }

// diffBuckets is the increase of each cumulative bucket since prev (prev
// nil: since zero).
func diffBuckets(cur, prev []bucket) []bucket {
	if cur == nil {
		return nil
	}
	out := slices.Clone(cur)
	if len(prev) == len(cur) {
		for i := range out {
			out[i].count = delta(cur[i].count, prev[i].count)
		}
	}
	return out
}

// quantile estimates the q-quantile from cumulative buckets the way
// Prometheus's histogram_quantile does: linear interpolation inside the
// bucket holding the rank; the highest finite bound when the rank falls in
// the +Inf bucket; nil without observations.
func quantile(q float64, bs []bucket) *float64 {
	if len(bs) == 0 || bs[len(bs)-1].count == 0 {
		return nil
	}
	rank := q * bs[len(bs)-1].count
	i := sort.Search(len(bs), func(i int) bool { return bs[i].count >= rank })
	if i == len(bs)-1 {
		if len(bs) < 2 {
			return nil
		}
		return ptr(bs[len(bs)-2].upper)
	}
	lower, below := 0.0, 0.0
	if i > 0 {
		lower, below = bs[i-1].upper, bs[i-1].count
	}
	in := bs[i].count - below
	if in <= 0 {
		return ptr(bs[i].upper)
	}
	return ptr(lower + (bs[i].upper-lower)*(rank-below)/in)
}

// HistoryAnswer is GET /v1/metrics/history: columns aligned with Times
// (unix seconds); a null is a sample without that value (a service not
// seen yet, or the first sample of a rate).
type HistoryAnswer struct {
	Interval time.Duration             `json:"interval"`
	Capacity int                       `json:"capacity"`
	Times    []float64                 `json:"times"`
	Services map[string]*ServiceSeries `json:"services"`
	Queues   map[string]*QueueSeries   `json:"queues"`
	Events   EventSeries               `json:"events"`
}

// ServiceSeries are one service's gateway columns: requests and 5xx
// answers per second, latency percentiles in seconds, breaker state
// ("closed", "half-open", "open", or "" when unknown).
type ServiceSeries struct {
	Requests []*float64 `json:"requestsPerSecond"`
	Errors   []*float64 `json:"errorsPerSecond"`
	P50      []*float64 `json:"p50Seconds"`
	P99      []*float64 `json:"p99Seconds"`
	Breaker  []string   `json:"breaker"`
}

// QueueSeries are one queue's depth columns.
type QueueSeries struct {
	Ready       []*float64 `json:"ready"`
	Delayed     []*float64 `json:"delayed"`
	InFlight    []*float64 `json:"inFlight"`
	DeadLetters []*float64 `json:"deadLetters"`
}

// EventSeries are the event store's columns.
type EventSeries struct {
	AppendedPerSecond []*float64            `json:"appendedPerSecond"`
	LastPosition      []*float64            `json:"lastPosition"`
	Lag               map[string][]*float64 `json:"subscriptionLag"`
}

func columns(ring []*sample, cfg HistoryConfig) HistoryAnswer {
	n := len(ring)
	a := HistoryAnswer{Interval: cfg.Interval, Capacity: cfg.Samples, Times: make([]float64, n),
		Services: map[string]*ServiceSeries{}, Queues: map[string]*QueueSeries{},
		Events: EventSeries{AppendedPerSecond: make([]*float64, n), LastPosition: make([]*float64, n), Lag: map[string][]*float64{}}}
	col := func() []*float64 { return make([]*float64, n) }
	for i, s := range ring {
		a.Times[i] = float64(s.at.UnixMilli()) / 1000
		for name, row := range s.services {
			ss := a.Services[name]
			if ss == nil {
				ss = &ServiceSeries{Requests: col(), Errors: col(), P50: col(), P99: col(), Breaker: make([]string, n)}
				a.Services[name] = ss
			}
			ss.Requests[i], ss.Errors[i], ss.P50[i], ss.P99[i], ss.Breaker[i] = row.requests, row.errors, row.p50, row.p99, row.breaker
		}
		for name, row := range s.queues {
			qs := a.Queues[name]
			if qs == nil {
				qs = &QueueSeries{Ready: col(), Delayed: col(), InFlight: col(), DeadLetters: col()}
				a.Queues[name] = qs
			}
			qs.Ready[i], qs.Delayed[i], qs.InFlight[i], qs.DeadLetters[i] = ptr(row.Ready), ptr(row.Delayed), ptr(row.InFlight), ptr(row.DeadLetters)
		}
		for g, v := range s.lags {
			if a.Events.Lag[g] == nil {
				a.Events.Lag[g] = col()
			}
			a.Events.Lag[g][i] = ptr(v)
		}
		a.Events.AppendedPerSecond[i], a.Events.LastPosition[i] = s.appendPS, s.lastPos
	}
	return a
}
