package client

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the client's Prometheus metrics; a nil *metrics records nothing.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	retries  *prometheus.CounterVec
	hedges   *prometheus.CounterVec
	budget   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plexus_client_requests_total",
			Help: "Calls made by the service client, by service and outcome (2xx, 4xx, 5xx, error, no_instances, breaker_open)."},
			[]string{"service", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "plexus_client_request_duration_seconds",
			Help: "Duration of whole calls (all attempts) by service.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)},
			[]string{"service"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plexus_client_retries_total",
			Help: "Retries by service and reason (connect, connection, 429, 502, 503, 504)."}, []string{"service", "reason"}),
		hedges: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plexus_client_hedges_total",
			Help: "Hedged attempts by service."}, []string{"service"}),
		budget: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plexus_client_budget_exhausted_total",
			Help: "Retries or hedges refused by their budget, by service and kind."}, []string{"service", "kind"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.retries, m.hedges, m.budget} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) done(service string, resp *Response, err error, d time.Duration) {
	if m == nil {
		return
	}
	outcome := "2xx"
	var se *StatusError
	switch {
	case errors.As(err, &se):
		outcome = string(rune('0'+se.StatusCode/100)) + "xx"
	case errors.Is(err, ErrNoInstances):
		outcome = "no_instances"
	case errors.Is(err, ErrAllOpen):
		outcome = "breaker_open"
	case err != nil || resp == nil:
		outcome = "error"
	}
	m.requests.WithLabelValues(service, outcome).Inc()
	m.duration.WithLabelValues(service).Observe(d.Seconds())
}

func (m *metrics) retry(service, reason string) {
	if m != nil {
		m.retries.WithLabelValues(service, reason).Inc()
	}
}

func (m *metrics) hedge(service string) {
	if m != nil {
		m.hedges.WithLabelValues(service).Inc()
	}
}

func (m *metrics) budgetExhausted(service, kind string) {
	if m != nil {
		m.budget.WithLabelValues(service, kind).Inc()
	}
}
