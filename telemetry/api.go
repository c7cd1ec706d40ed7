package telemetry

import (
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/plexushq/plexus/internal/httpx"
)

// API serves the OTLP/HTTP receiver and the trace search over a Store,
// and a node's metrics history, as docs/openapi.yaml describes. Handlers
// are thin; errors go through the API's httpx.Errors (every 5xx logged
// once). The zero value is not usable; build one with NewAPI.
type API struct {
	store   *Store
	history *History
	maxBody int64
	log     *slog.Logger
	errs    httpx.Errors
	exports *prometheus.CounterVec // nil without a registerer
}

// APIConfig configures NewAPI.
type APIConfig struct {
	// MaxBodyBytes bounds an export body, both as sent and after gzip
	// decompression. Default 8 MiB.
	MaxBodyBytes int64
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Metrics receives plexus_telemetry_exports_total{encoding,result}. Nil: none.
	Metrics prometheus.Registerer
	// History, when set, is served at GET /v1/metrics/history.
	History *History
}

// maxListLimit bounds GET /v1/traces?limit=.
const maxListLimit = 1000

// NewAPI returns the HTTP API over store (nil: no trace endpoints, e.g.
// a node without the control role that still serves its History).
func NewAPI(store *Store, cfg APIConfig) *API {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 8 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	a := &API{store: store, history: cfg.History, maxBody: cfg.MaxBodyBytes, log: cfg.Logger,
		errs: httpx.Errors{Log: cfg.Logger}}
	if cfg.Metrics != nil && store != nil {
		a.exports = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plexus_telemetry_exports_total",
			Help: "OTLP export requests received, by encoding (protobuf, json, other) and result (ok, partial, rejected)."},
			[]string{"encoding", "result"})
		for _, enc := range []string{"protobuf", "json", "other"} {
			for _, res := range []string{"ok", "partial", "rejected"} {
				a.exports.WithLabelValues(enc, res) // at 0 from the start, so rates and alerts work
			}
		}
		if err := cfg.Metrics.Register(a.exports); err != nil {
			cfg.Logger.Warn("telemetry: exports metric not registered", "err", err)
			a.exports = nil
		}
	}
	return a
}

func (a *API) count(media, result string) {
	if a.exports == nil {
		return
	}
	enc := "other"
	switch media {
	case ContentTypeProtobuf:
		enc = "protobuf"
	case ContentTypeJSON:
		enc = "json"
	}
	a.exports.WithLabelValues(enc, result).Inc()
}

// Mount registers the routes with handle (e.g. a ServeMux's Handle).
func (a *API) Mount(handle func(pattern string, h http.Handler)) {
	if a.store != nil {
		handle("POST /v1/traces", http.HandlerFunc(a.Export))
		handle("GET /v1/traces", http.HandlerFunc(a.List))
		handle("GET /v1/traces/services", http.HandlerFunc(a.Services))
		handle("GET /v1/traces/{traceId}", http.HandlerFunc(a.Get))
	}
	if a.history != nil {
		handle("GET /v1/metrics/history", http.HandlerFunc(a.History))
	}
}

// Handler is the API on its own mux (tests, embedding).
func (a *API) Handler() http.Handler { return httpx.Mux(a.Mount) }

// History is GET /v1/metrics/history: the History's Snapshot.
func (a *API) History(w http.ResponseWriter, _ *http.Request) {
	httpx.WriteJSON(w, http.StatusOK, a.history.Snapshot())
}

// Export is POST /v1/traces: an OTLP/HTTP export in protobuf or JSON,
// optionally gzip-compressed.
func (a *API) Export(w http.ResponseWriter, r *http.Request) {
	media, err := mediaType(r.Header.Get("Content-Type"))
	if err != nil {
		a.count("", "rejected")
		a.errs.Write(w, r, httpx.NewProblem(http.StatusUnsupportedMediaType, "unsupported-media-type", err.Error()))
		return
	}
	body, p := a.readBody(w, r)
	if p != nil {
		a.count(media, "rejected")
		a.errs.Write(w, r, p)
		return
	}
	req, err := DecodeExport(body, media)
	if err != nil {
		a.log.Debug("telemetry: malformed OTLP export", "remote", r.RemoteAddr, "err", err)
		a.count(media, "rejected")
		a.errs.Write(w, r, httpx.NewProblem(http.StatusBadRequest, "malformed-otlp", err.Error()))
		return
	}
	spans, rejected := spansFromRequest(req)
	a.store.Add(spans...)
	resp := &coltracepb.ExportTraceServiceResponse{}
	if rejected == 0 {
		a.count(media, "ok")
	} else {
		a.count(media, "partial")
		resp.PartialSuccess = &coltracepb.ExportTracePartialSuccess{
			RejectedSpans: int64(rejected), ErrorMessage: "spans with invalid trace or span ids were rejected"}
	}
	var out []byte
	if media == ContentTypeJSON {
		out, err = protojson.Marshal(resp)
	} else {
		out, err = proto.Marshal(resp)
	}
	if err != nil {
		a.errs.Write(w, r, fmt.Errorf("telemetry: encoding the export response: %w", err))
		return
	}
	w.Header().Set("Content-Type", media)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// readBody reads the body, bounded as sent and after gzip decompression,
// with the shared reader (httpx.ReadBytes: 413, 408, 400).
func (a *API) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *httpx.Problem) {
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(http.MaxBytesReader(w, r.Body, a.maxBody))
		if err != nil {
			return nil, httpx.NewProblem(http.StatusBadRequest, "malformed-otlp", "reading gzip: "+err.Error())
		}
		defer zr.Close()
		r.Body = zr
	default:
		return nil, httpx.NewProblem(http.StatusUnsupportedMediaType, "unsupported-encoding",
			fmt.Sprintf("Content-Encoding %q: want gzip or none", enc))
	}
	return httpx.ReadBytes(w, r, a.maxBody)
}

// Services is GET /v1/traces/services: the services and operation names
// seen, for a search form: {"services":[{"service","operations":[…]}]}.
func (a *API) Services(w http.ResponseWriter, _ *http.Request) {
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"services": a.store.Services()})
}

// List is GET /v1/traces?service=&operation=&minDuration=&maxDuration=
// &errors=&from=&to=&lookback=&limit=.
func (a *API) List(w http.ResponseWriter, r *http.Request) {
	q, p := parseQuery(r)
	if p != nil {
		a.errs.Write(w, r, p)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, a.store.List(q))
}

func parseQuery(r *http.Request) (Query, *httpx.Problem) {
	v := r.URL.Query()
	q := Query{Service: v.Get("service"), Operation: v.Get("operation"), Limit: 20}
	bad := func(detail string) (Query, *httpx.Problem) {
		return Query{}, httpx.NewProblem(http.StatusBadRequest, "bad-query", detail)
	}
	if len(q.Service) > 128 || len(q.Operation) > 256 {
		return bad("service: at most 128 characters; operation: at most 256")
	}
	for _, d := range []struct {
		key string
		dst *time.Duration
	}{{"minDuration", &q.MinDuration}, {"maxDuration", &q.MaxDuration}} {
		if s := v.Get(d.key); s != "" {
			x, err := time.ParseDuration(s)
			if err != nil || x < 0 {
				return bad(fmt.Sprintf("%s %q: want a duration such as 100ms", d.key, s))
			}
			*d.dst = x
		}
	}
	for _, t := range []struct {
		key string
		dst *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		if s := v.Get(t.key); s != "" {
			x, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return bad(fmt.Sprintf("%s %q: want an RFC 3339 time such as 2025-01-02T15:04:05Z", t.key, s))
			}
			*t.dst = x
		}
	}
	if s := v.Get("lookback"); s != "" {
		x, err := time.ParseDuration(s)
		if err != nil || x <= 0 {
			return bad(fmt.Sprintf("lookback %q: want a duration such as 1h", s))
		}
		if q.From.IsZero() {
			q.From = time.Now().Add(-x)
		}
	}
	if s := v.Get("errors"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return bad(fmt.Sprintf("errors %q: want true or false", s))
		}
		q.Errors = b
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxListLimit {
			return bad(fmt.Sprintf("limit %q: want 1 to %d", s, maxListLimit))
		}
		q.Limit = n
	}
	return q, nil
}

// Get is GET /v1/traces/{traceId}.
func (a *API) Get(w http.ResponseWriter, r *http.Request) {
	id := strings.ToLower(r.PathValue("traceId"))
	if b, err := hex.DecodeString(id); err != nil || len(b) != 16 {
		a.errs.Write(w, r, httpx.NewProblem(http.StatusBadRequest, "bad-trace-id",
			fmt.Sprintf("trace id %q: want 32 hex digits", clipID(id))))
		return
	}
	t, ok := a.store.Get(id)
	if !ok {
		a.errs.Write(w, r, httpx.NewProblem(http.StatusNotFound, "trace-not-found",
			fmt.Sprintf("trace %s not found (never received, or evicted)", id)))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, t)
}
