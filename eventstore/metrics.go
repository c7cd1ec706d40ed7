package eventstore

import (
	"context"
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
	for _, r := range []string{"ok", "conflict", "invalid", "error"} {
		m.appends.WithLabelValues(r)
	}
	return m
}

// initGroup creates group's counters at 0, so their rates and alerts work
// before its first event.
func (m *metrics) initGroup(group string) {
	if m == nil {
		return
	}
	for _, r := range []string{"ok", "retry", "parked"} {
		m.handled.WithLabelValues(group, r)
	}
	m.parked.WithLabelValues(group)
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

// collectTimeout bounds the engine calls of one scrape.
const collectTimeout = 5 * time.Second

var (
	descLastPosition = prometheus.NewDesc("plexus_events_last_position",
		"Global position of the newest stored event.", nil, nil)
	descStored = prometheus.NewDesc("plexus_events_stored",
		"Appends held by the events stream (engine messages: an append of several events is one).", nil, nil)
	descLag = prometheus.NewDesc("plexus_events_subscription_lag",
		"Appends a subscriber group has not checkpointed yet (engine messages: not delivered plus delivered and not handled).",
		[]string{"group"}, nil)
)

// NewCollector exports the event store's state, read from the engine at
// scrape time: plexus_events_last_position, plexus_events_stored and
// plexus_events_subscription_lag{group}. Register it once per registry.
func NewCollector(s *Store) prometheus.Collector { return statsCollector{s} }

type statsCollector struct{ s *Store }

func (c statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLastPosition, descStored, descLag} {
		ch <- d
	}
}

func (c statsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), collectTimeout)
	defer cancel()
	st, err := c.s.Stats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descLastPosition, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(descLastPosition, prometheus.GaugeValue, float64(st.LastPosition))
	ch <- prometheus.MustNewConstMetric(descStored, prometheus.GaugeValue, float64(st.Appends))
	groups, err := c.s.Groups(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descLag, err)
		return
	}
	for _, g := range groups {
		ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(g.Pending)+float64(g.InFlight), g.Group)
	}
}
