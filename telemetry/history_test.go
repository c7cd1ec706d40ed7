package telemetry

import (
	"encoding/json"
	"math"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type historyFixture struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	breaker  *prometheus.GaugeVec
	messages *prometheus.GaugeVec
	appended prometheus.Counter
}

func newHistoryFixture(t *testing.T) *historyFixture {
	t.Helper()
	f := &historyFixture{reg: prometheus.NewRegistry()}
	labels := []string{"service", "route", "http_request_method", "http_response_status_code"}
	f.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plexus_gateway_requests_total", Help: "h"}, labels)
	f.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "plexus_gateway_request_duration_seconds", Help: "h",
		Buckets: []float64{.01, .1, 1}}, labels)
	f.breaker = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "plexus_gateway_breaker_state", Help: "h"}, []string{"service", "state"})
	f.messages = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "plexus_queue_messages", Help: "h"}, []string{"queue", "state"})
	f.appended = prometheus.NewCounter(prometheus.CounterOpts{Name: "plexus_events_appended_total", Help: "h"})
	f.reg.MustRegister(f.requests, f.duration, f.breaker, f.messages, f.appended)
	return f
}

func (f *historyFixture) serve(svc, code string, n int, seconds float64) {
	for range n {
		f.requests.WithLabelValues(svc, "api", "GET", code).Inc()
		f.duration.WithLabelValues(svc, "api", "GET", code).Observe(seconds)
	}
}

func approx(t *testing.T, what string, got *float64, want float64) {
	t.Helper()
	if got == nil || math.Abs(*got-want) > 1e-9 {
		t.Errorf("%s = %v, want %v", what, deref(got), want)
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestHistoryRatesAndPercentiles: rates and percentiles are computed
// between consecutive samples, like rate() and histogram_quantile() over
// one interval; gauges are copied; the first sample has no rate.
func TestHistoryRatesAndPercentiles(t *testing.T) {
	f := newHistoryFixture(t)
	h := NewHistory(f.reg, HistoryConfig{Interval: 5 * time.Second, Samples: 10})
	t0 := time.Unix(1_700_000_000, 0)
	f.serve("shop", "200", 100, 0.005) // before the first sample: not a rate
	f.breaker.WithLabelValues("shop", "closed").Set(1)
	h.Sample(t0)

	f.serve("shop", "200", 40, 0.005) // 40 fast answers in the first bucket
	f.serve("shop", "500", 10, 0.5)   // 10 slow failures in the third
	f.breaker.WithLabelValues("shop", "closed").Set(0)
	f.breaker.WithLabelValues("shop", "open").Set(1)
	f.messages.WithLabelValues("jobs", "ready").Set(7)
	f.messages.WithLabelValues("jobs", "in_flight").Set(2)
	f.appended.Add(25)
	h.Sample(t0.Add(5 * time.Second))

	a := h.Snapshot()
	if len(a.Times) != 2 || a.Times[1]-a.Times[0] != 5 {
		t.Fatalf("times %v", a.Times)
	}
	shop := a.Services["shop"]
	if shop == nil {
		t.Fatalf("no shop series: %+v", a.Services)
	}
	if shop.Requests[0] != nil || shop.P99[0] != nil {
		t.Errorf("the first sample has a rate: %v %v", deref(shop.Requests[0]), deref(shop.P99[0]))
	}
	approx(t, "requests/s", shop.Requests[1], 10) // 50 in 5s
	approx(t, "errors/s", shop.Errors[1], 2)      // 10 in 5s
	approx(t, "p50", shop.P50[1], 0.01*25/40)     // rank 25 of 40 in [0, 0.01]
	approx(t, "p99", shop.P99[1], 0.1+0.9*9.5/10) // rank 49.5: 9.5 of 10 in [0.1, 1]
	if shop.Breaker[0] != "closed" || shop.Breaker[1] != "open" {
		t.Errorf("breaker timeline %v", shop.Breaker)
	}
	jobs := a.Queues["jobs"]
	if jobs == nil || jobs.Ready[0] != nil {
		t.Fatalf("queue series %+v", jobs)
	}
	approx(t, "ready", jobs.Ready[1], 7)
	approx(t, "in flight", jobs.InFlight[1], 2)
	approx(t, "append rate", a.Events.AppendedPerSecond[1], 5)

	rec := httptest.NewRecorder()
	NewAPI(nil, APIConfig{History: h}).Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/v1/metrics/history", nil))
	var wire map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &wire); err != nil || wire["interval"] != "5s" {
		t.Fatalf("answer %s: %v", rec.Body.Bytes(), err)
	}
}

// TestHistoryIsBounded: the ring keeps the newest Samples samples and
// MaxSeries services.
func TestHistoryIsBounded(t *testing.T) {
	f := newHistoryFixture(t)
	h := NewHistory(f.reg, HistoryConfig{Samples: 3, MaxSeries: 2})
	t0 := time.Unix(1_700_000_000, 0)
	for i := range 5 {
		for _, svc := range []string{"a", "b", "c"} {
			f.serve(svc, "200", 1, 0.001)
		}
		h.Sample(t0.Add(time.Duration(i) * time.Second))
	}
	a := h.Snapshot()
	if len(a.Times) != 3 || a.Times[0] != float64(t0.Unix()+2) {
		t.Fatalf("kept times %v, want the newest 3", a.Times)
	}
	if len(a.Services) != 2 {
		t.Fatalf("kept %d services, want 2", len(a.Services))
	}
}

// TestHistoryStartStop: the sampling goroutine takes a first sample at
// once and ends with Stop.
func TestHistoryStartStop(t *testing.T) {
	f := newHistoryFixture(t)
	h := NewHistory(f.reg, HistoryConfig{Interval: time.Hour})
	if err := h.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(h.Snapshot().Times) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no first sample")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := h.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
}
