package service

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/plexushq/plexus/internal/httpx"
	"github.com/plexushq/plexus/telemetry"
)

// serverMetrics are the per-request metrics of a service.
type serverMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inflight prometheus.Gauge
}

func newServerMetrics(reg prometheus.Registerer) (*serverMetrics, error) {
	m := &serverMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plexus_service_requests_total",
			Help: "Requests served, by method and status code."}, []string{"method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "plexus_service_request_duration_seconds",
			Help: "Time to serve a request, by method.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"method"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "plexus_service_requests_in_flight",
			Help: "Requests being served."}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.inflight} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// methodLabel bounds the method label to the standard methods.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}

// handler serves health and metrics, and wraps h with tracing, logging and metrics.
func (s *Service) handler(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+s.cfg.HealthPath, s.health)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Metrics, promhttp.HandlerOpts{Registry: s.cfg.Metrics}))
	mux.Handle("/", s.instrument(h))
	return mux
}

func (s *Service) health(w http.ResponseWriter, _ *http.Request) {
	if s.draining.Load() {
		httpx.WriteJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "draining", "id": s.cfg.ID})
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"status": "healthy", "id": s.cfg.ID,
		"service": s.cfg.Name, "version": s.cfg.Version, "timestamp": time.Now().UTC()})
}

// instrument adds a server span (continuing the caller's trace context),
// an access log line and metrics to every request.
func (s *Service) instrument(h http.Handler) http.Handler {
	tracer := s.cfg.TracerProvider.Tracer("github.com/plexushq/plexus/service")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		s.metrics.inflight.Inc()
		defer s.metrics.inflight.Dec()
		ctx := telemetry.ExtractHTTP(r.Context(), r.Header)
		ctx, span := tracer.Start(ctx, r.Method+" "+r.URL.Path, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path),
				attribute.String("service.instance.id", s.cfg.ID)))
		defer span.End()
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r.WithContext(ctx))
		d := time.Since(start)
		span.SetAttributes(attribute.Int("http.response.status_code", rec.status))
		if rec.status >= 500 {
			span.SetStatus(codes.Error, "HTTP "+strconv.Itoa(rec.status))
		}
		method := methodLabel(r.Method)
		s.metrics.requests.WithLabelValues(method, strconv.Itoa(rec.status)).Inc()
		s.metrics.duration.WithLabelValues(method).Observe(d.Seconds())
		s.cfg.Logger.LogAttrs(ctx, levelFor(rec.status), "request", slogAttrs(r, rec, d, span.SpanContext())...)
	})
}

// recorder captures the status; Unwrap keeps http.ResponseController working.
type recorder struct {
	http.ResponseWriter
	status int
	wrote  bool
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Flush lets streaming handlers flush through the recorder.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
