package gateway

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/plexushq/plexus/breaker"
	"github.com/plexushq/plexus/retry"
)

// metrics are the gateway's Prometheus collectors. Labels stay bounded:
// service is a registry name or "unknown", route a configured route's name
// or "api"/"health"/"preflight"/"none", http_request_method a standard
// method or "_OTHER", http_response_status_code a three-digit status. The
// request metrics mirror OpenTelemetry's http.server.request.duration, so
// their method and status labels carry the semantic conventions' names.
type metrics struct {
	requests        *prometheus.CounterVec
	duration        *prometheus.HistogramVec
	upstreamErrors  *prometheus.CounterVec
	retries         *prometheus.CounterVec
	budgetExhausted *prometheus.CounterVec
	ejections       *prometheus.CounterVec
	breakerChanges  *prometheus.CounterVec
	rateLimited     *prometheus.CounterVec
	reloads         *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, g *Gateway) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plexus_gateway_requests_total",
			Help: "Requests answered by the gateway."}, httpLabels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "plexus_gateway_request_duration_seconds",
			Help:    "Time from request to the end of the answer (OpenTelemetry's http.server.request.duration).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, httpLabels),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plexus_gateway_upstream_errors_total",
			Help: "Failed tries to upstream instances by kind (connect, timeout, reset, body)."}, []string{"service", "kind"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plexus_gateway_retries_total",
			Help: "Tries repeated on another instance."}, []string{"service"}),
		budgetExhausted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plexus_gateway_retry_budget_exhausted_total",
			Help: "Retries refused because the retry budget was spent."}, []string{"service"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plexus_gateway_ejections_total",
			Help: "Instances ejected by passive health checking."}, []string{"service"}),
		breakerChanges: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plexus_gateway_breaker_transitions_total",
			Help: "Circuit breaker state changes, of services and of instances."}, []string{"service", "scope", "to"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plexus_gateway_rate_limited_total",
			Help: "Requests refused with 429."}, []string{"service", "route"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plexus_gateway_config_reloads_total",
			Help: "Configuration changes applied or rejected."}, []string{"result"}),
	}
	m.reloads.WithLabelValues("applied")
	m.reloads.WithLabelValues("rejected")
	if reg == nil {
		return m, nil
	}
	known := &knownSeries{g: g, m: m}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.reloads, known} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

var codeLabels = func() (t [600]string) {
	for i := 100; i < 600; i++ {
		t[i] = strconv.Itoa(i)
	}
	return t
}()

func codeLabel(c int) string {
	if c >= 100 && c < 600 {
		return codeLabels[c]
	}
	return "other"
}

func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "_OTHER" // the semantic conventions' name for a method outside the known set
}

// httpLabels are the labels of the request counter and histogram.
var httpLabels = []string{"service", "route", "http_request_method", "http_response_status_code"}

func (m *metrics) observe(ex *exchange, d time.Duration) {
	m.requests.WithLabelValues(ex.svcLabel, ex.route, methodLabel(ex.r.Method), codeLabel(ex.status)).Inc()
	m.duration.WithLabelValues(ex.svcLabel, ex.route, methodLabel(ex.r.Method), codeLabel(ex.status)).Observe(d.Seconds())
}

func (m *metrics) upstreamErr(service string, ctx context.Context, err error) {
	kind := "reset"
	switch {
	case errors.Is(context.Cause(ctx), errUpstreamTimeout):
		kind = "timeout"
	case retry.DialError(err):
		kind = "connect"
	}
	m.upstreamErrors.WithLabelValues(service, kind).Inc()
}

// breakerChanged logs and counts a breaker's state change. Breakers are
// named "service" or "service/instance".
func (g *Gateway) breakerChanged(name string, from, to breaker.State) {
	service, instance, isInst := strings.Cut(name, "/")
	scope := "service"
	if isInst {
		scope = "instance"
	}
	g.metrics.breakerChanges.WithLabelValues(service, scope, to.String()).Inc()
	lvl := g.log.Info
	if to == breaker.Open {
		lvl = g.log.Warn
	}
	lvl("gateway: circuit breaker changed state", "service", service, "instance", instance,
		"from", from.String(), "to", to.String())
}
