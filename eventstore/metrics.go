package eventstore

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the plexus_events_* series; nil-safe when no registerer.
type metrics struct {
	appends  *prometheus.CounterVec
	events   prometheus.Counter
	duration prometheus.Histogram
	handled  *prometheus.CounterVec
	parked   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		return nil
	}
	m := &metrics{
		appends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plexus_events_appends_total", Help: "Append calls by result (ok, conflict, invalid, error).",
		}, []string{"result"}),
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "plexus_events_appended_total", Help: "Events stored.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "plexus_events_append_duration_seconds", Help: "Append latency.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}),
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plexus_events_handled_total", Help: "Handler runs by subscriber group and result (ok, retry, parked).",
		}, []string{"group", "result"}),
		parked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plexus_events_parked_total", Help: "Events parked by subscriber group.",
		}, []string{"group"}),
	}
	m.appends = register(reg, m.appends)
	m.events = register(reg, m.events)
	m.duration = register(reg, m.duration)
	m.handled = register(reg, m.handled)
	m.parked = register(reg, m.parked)
	return m
}

func (m *metrics) appended(n int, err error, took time.Duration) {
	if m == nil {
		return
	}
	result := "ok"
	switch {
	case err == nil:
		m.events.Add(float64(n))
	case errors.Is(err, ErrConflict):
		result = "conflict"
	case errors.Is(err, ErrInvalid), errors.Is(err, ErrRejected):
		result = "invalid"
	default:
		result = "error"
	}
	m.appends.WithLabelValues(result).Inc()
	m.duration.Observe(took.Seconds())
}

func (m *metrics) handledOne(group, result string) {
	if m == nil {
		return
	}
	m.handled.WithLabelValues(group, result).Inc()
	if result == "parked" {
		m.parked.WithLabelValues(group).Inc()
	}
}

// register adds c to reg, or returns the collector already registered
// under its name (two stores on one registry share their series).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(fmt.Sprintf("eventstore: metrics: %v", err))
	}
	return c
}
