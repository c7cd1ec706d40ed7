package telemetry

import (
	"compress/gzip"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
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

// API serves the OTLP/HTTP receiver and the trace query endpoints over a
// Store. The zero value is not usable; build one with NewAPI.
type API struct {
	store   *Store
	maxBody int64
	log     *slog.Logger
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
}

// maxListLimit bounds GET /v1/traces?limit=.
const maxListLimit = 1000

// NewAPI returns the HTTP API over store.
func NewAPI(store *Store, cfg APIConfig) *API {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 8 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	a := &API{store: store, maxBody: cfg.MaxBodyBytes, log: cfg.Logger}
	if cfg.Metrics != nil {
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

// Register adds the routes to a mux-like registration function, e.g.
// http.ServeMux.Handle.
func (a *API) Register(handle func(pattern string, h http.Handler)) {
	handle("POST /v1/traces", http.HandlerFunc(a.Export))
	handle("GET /v1/traces", http.HandlerFunc(a.List))
	handle("GET /v1/traces/services", http.HandlerFunc(a.Services))
	handle("GET /v1/traces/{traceId}", http.HandlerFunc(a.Get))
}

// Export is POST /v1/traces: an OTLP/HTTP export in protobuf or JSON,
// optionally gzip-compressed.
func (a *API) Export(w http.ResponseWriter, r *http.Request) {
	media, err := mediaType(r.Header.Get("Content-Type"))
	if err != nil {
		a.count("", "rejected")
		httpx.WriteProblem(w, httpx.NewProblem(http.StatusUnsupportedMediaType, "unsupported-media-type", err.Error()))
		return
	}
	body, p := a.readBody(w, r)
	if p != nil {
		a.count(media, "rejected")
		httpx.WriteProblem(w, p)
		return
	}
	req, err := DecodeExport(body, media)
	if err != nil {
		a.log.Debug("telemetry: malformed OTLP export", "remote", r.RemoteAddr, "err", err)
		a.count(media, "rejected")
		httpx.WriteProblem(w, httpx.NewProblem(http.StatusBadRequest, "malformed-otlp", err.Error()))
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
		httpx.Error(w, http.StatusInternalServerError, "encoding the export response failed")
		return
	}
	w.Header().Set("Content-Type", media)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// readBody reads the bounded, possibly gzip-compressed body.
func (a *API) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *httpx.Problem) {
	tooLarge := httpx.NewProblem(http.StatusRequestEntityTooLarge, "body-too-large",
		fmt.Sprintf("export body larger than %d bytes", a.maxBody))
	var src io.Reader = http.MaxBytesReader(w, r.Body, a.maxBody)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(src)
		if err != nil {
			return nil, bodyError(err, tooLarge, "gzip")
		}
		defer zr.Close()
		src = zr
	default:
		return nil, httpx.NewProblem(http.StatusUnsupportedMediaType, "unsupported-encoding",
			fmt.Sprintf("Content-Encoding %q: want gzip or none", enc))
	}
	body, err := io.ReadAll(io.LimitReader(src, a.maxBody+1))
	if err != nil {
		return nil, bodyError(err, tooLarge, "body")
	}
	if int64(len(body)) > a.maxBody {
		return nil, tooLarge
	}
	return body, nil
}

func bodyError(err error, tooLarge *httpx.Problem, what string) *httpx.Problem {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return tooLarge
	}
	return httpx.NewProblem(http.StatusBadRequest, "malformed-otlp", fmt.Sprintf("reading %s: %v", what, err))
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
		httpx.WriteProblem(w, p)
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
		httpx.WriteProblem(w, httpx.NewProblem(http.StatusBadRequest, "bad-trace-id",
			fmt.Sprintf("trace id %q: want 32 hex digits", clipID(id))))
		return
	}
	t, ok := a.store.Get(id)
	if !ok {
		httpx.WriteProblem(w, httpx.NewProblem(http.StatusNotFound, "trace-not-found",
			fmt.Sprintf("trace %s not found (never received, or evicted)", id)))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, t)
}
