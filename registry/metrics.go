package registry

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// checkMetrics are the checker's counters; nil means none.
type checkMetrics struct {
	checks   *prometheus.CounterVec
	duration prometheus.Histogram
	changes  *prometheus.CounterVec
}

func newCheckMetrics(reg prometheus.Registerer) (*checkMetrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &checkMetrics{
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plexus_registry_checks_total",
			Help: "Active health checks by result (pass or fail).",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "plexus_registry_check_duration_seconds",
			Help:    "Duration of active health checks.",
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5},
		}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plexus_registry_status_changes_total",
			Help: "Instance status changes made by health checks, by new status.",
		}, []string{"status"}),
	}
	var err error
	m.checks = register(reg, m.checks, &err)
	m.duration = register(reg, m.duration, &err)
	m.changes = register(reg, m.changes, &err)
	return m, err
}

// register registers c, or returns the collector already registered under
// its name (several checkers in one process share the series).
func register[C prometheus.Collector](reg prometheus.Registerer, c C, errp *error) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		*errp = errors.Join(*errp, err)
	}
	return c
}

func (m *checkMetrics) unregister(reg prometheus.Registerer) {
	if m == nil || reg == nil {
		return
	}
	reg.Unregister(m.checks)
	reg.Unregister(m.duration)
	reg.Unregister(m.changes)
}

func (m *checkMetrics) observe(ok bool, d time.Duration) {
	if m == nil {
		return
	}
	result := "fail"
	if ok {
		result = "pass"
	}
	m.checks.WithLabelValues(result).Inc()
	m.duration.Observe(d.Seconds())
}

func (m *checkMetrics) changed(s Status) {
	if m == nil {
		return
	}
	m.changes.WithLabelValues(string(s)).Inc()
}
