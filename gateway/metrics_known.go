package gateway

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/plexushq/plexus/breaker"
)

// upstreamErrorKinds are the kind label values of upstream_errors_total.
var upstreamErrorKinds = []string{"connect", "timeout", "reset", "body"}

// breakerStates are the state label values of breaker_state, and the to
// label values of breaker_transitions_total.
var breakerStates = []breaker.State{breaker.Closed, breaker.HalfOpen, breaker.Open}

var descBreakerState = prometheus.NewDesc("plexus_gateway_breaker_state",
	"1 for the state each service's circuit breaker is in (closed, half-open, open), 0 for the others.",
	[]string{"service", "state"}, nil)

// knownSeries collects the counters that are created on first use
// (upstream errors, retries, rate-limited, ejections, breaker transitions)
// after creating them at 0 for every service the registry knows, so rates
// and alerts work from the first scrape instead of showing "no data" until
// the first failure. It also exports each service's breaker state, read at
// scrape time.
type knownSeries struct {
	g *Gateway
	m *metrics
}

func (k *knownSeries) vecs() []prometheus.Collector {
	m := k.m
	return []prometheus.Collector{m.upstreamErrors, m.retries, m.budgetExhausted, m.ejections, m.rateLimited, m.breakerChanges}
}

func (k *knownSeries) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range k.vecs() {
		c.Describe(ch)
	}
	ch <- descBreakerState
}

func (k *knownSeries) Collect(ch chan<- prometheus.Metric) {
	names := k.serviceNames()
	for _, svc := range names {
		k.initService(svc)
	}
	if c := k.g.cfg.Load(); c != nil {
		for _, rt := range c.routes {
			if k.g.disc.Service(rt.service) != nil {
				k.m.rateLimited.WithLabelValues(rt.service, rt.name)
			}
		}
	}
	for _, c := range k.vecs() {
		c.Collect(ch)
	}
	for _, svc := range names {
		cur := k.g.serviceBreakerState(svc)
		for _, st := range breakerStates {
			v := 0.0
			if st == cur {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descBreakerState, prometheus.GaugeValue, v, svc, st.String())
		}
	}
}

func (k *knownSeries) serviceNames() []string {
	snaps := k.g.disc.Services()
	names := make([]string, 0, len(snaps))
	for _, s := range snaps {
		names = append(names, s.Name)
	}
	return names
}

// initService creates svc's series of every lazily created counter.
func (k *knownSeries) initService(svc string) {
	m := k.m
	for _, kind := range upstreamErrorKinds {
		m.upstreamErrors.WithLabelValues(svc, kind)
	}
	m.retries.WithLabelValues(svc)
	m.budgetExhausted.WithLabelValues(svc)
	m.ejections.WithLabelValues(svc)
	m.rateLimited.WithLabelValues(svc, "api")
	for _, scope := range []string{"service", "instance"} {
		for _, st := range breakerStates {
			m.breakerChanges.WithLabelValues(svc, scope, st.String())
		}
	}
}

// serviceBreakerState is the state of svc's service breaker; closed when
// the gateway has not served svc yet (no breaker built).
func (g *Gateway) serviceBreakerState(svc string) breaker.State {
	v, ok := g.services.Load(svc)
	if !ok {
		return breaker.Closed
	}
	s := v.(*service)
	s.mu.Lock()
	br := s.breaker
	s.mu.Unlock()
	if br == nil {
		return breaker.Closed
	}
	return br.State()
}
