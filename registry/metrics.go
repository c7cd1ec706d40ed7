package registry

import (
	"errors"
	"sync/atomic"
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
	for _, r := range []string{"pass", "fail"} {
		m.checks.WithLabelValues(r)
	}
	for _, st := range []Status{StatusHealthy, StatusUnhealthy} {
		m.changes.WithLabelValues(string(st))
	}
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

// feedState tracks the cache's feed for the watch-staleness metrics and
// the view age: a gateway routing on a cache whose feed is down or stalled
// routes on an old view.
type feedState struct {
	connected     atomic.Bool
	interruptions atomic.Int64
	stalls        atomic.Int64
	created       time.Time
	lastFresh     atomic.Int64 // unix nanos: FreshAt of the last ended session
	src           atomic.Pointer[freshSource]
}

// freshSource is the running session's proof of freshness.
type freshSource struct{ freshAt func() time.Time }

var (
	descCacheConnected = prometheus.NewDesc("plexus_registry_cache_connected",
		"1 while this node's registry cache receives changes from the engine, else 0.", nil, nil)
	descCacheStale = prometheus.NewDesc("plexus_registry_cache_stale_seconds",
		"Age of this node's registry view: time since the cache last proved it had every change the engine had "+
			"(up to the watch check interval, 1s, while healthy; grows while the feed is down or stalled).", nil, nil)
	descCacheInterrupts = prometheus.NewDesc("plexus_registry_cache_interruptions_total",
		"Times the registry cache's feed broke or stalled and had to reconnect (planned resyncs excluded).", nil, nil)
	descCacheStalls = prometheus.NewDesc("plexus_registry_cache_stalls_total",
		"Times the registry cache's feed stalled (the engine had changes it did not deliver) and was resynced at once.", nil, nil)
)

func (f *feedState) up(freshAt func() time.Time) {
	f.src.Store(&freshSource{freshAt: freshAt})
	f.connected.Store(true)
}

func (f *feedState) down() {
	if src := f.src.Swap(nil); src != nil {
		f.lastFresh.Store(src.freshAt().UnixNano())
	}
	f.connected.Store(false)
}

// freshAt is when the view was last proved complete; zero before the
// first snapshot.
func (f *feedState) freshAt() time.Time {
	var t time.Time
	if n := f.lastFresh.Load(); n != 0 {
		t = time.Unix(0, n)
	}
	if src := f.src.Load(); src != nil {
		if s := src.freshAt(); s.After(t) {
			t = s
		}
	}
	return t
}

// age is the view's age at now; before the first snapshot, the time since
// the cache was made.
func (f *feedState) age(now time.Time) time.Duration {
	t := f.freshAt()
	if t.IsZero() {
		t = f.created
	}
	return max(now.Sub(t), 0)
}

func (f *feedState) describe(ch chan<- *prometheus.Desc) {
	ch <- descCacheConnected
	ch <- descCacheStale
	ch <- descCacheInterrupts
	ch <- descCacheStalls
}

func (f *feedState) collect(ch chan<- prometheus.Metric) {
	conn := 0.0
	if f.connected.Load() {
		conn = 1
	}
	ch <- prometheus.MustNewConstMetric(descCacheConnected, prometheus.GaugeValue, conn)
	ch <- prometheus.MustNewConstMetric(descCacheStale, prometheus.GaugeValue, f.age(time.Now()).Seconds())
	ch <- prometheus.MustNewConstMetric(descCacheInterrupts, prometheus.CounterValue, float64(f.interruptions.Load()))
	ch <- prometheus.MustNewConstMetric(descCacheStalls, prometheus.CounterValue, float64(f.stalls.Load()))
}
