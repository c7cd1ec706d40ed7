package server

import (
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/plexushq/plexus/docs"
	"github.com/plexushq/plexus/internal/httpx"
)

// adminMux is the admin listener's router: an http.ServeMux that remembers
// every pattern registered on it (the OpenAPI contract test compares them
// with docs/openapi.yaml) and answers requests no pattern matches with a
// problem+json 404, or 405 with Allow, instead of ServeMux's plain text.
type adminMux struct {
	mux *http.ServeMux

	mu       sync.Mutex
	patterns []string
}

func newAdminMux() *adminMux { return &adminMux{mux: http.NewServeMux()} }

// Handle registers h for pattern and records the pattern.
func (m *adminMux) Handle(pattern string, h http.Handler) {
	m.mux.Handle(pattern, h)
	m.mu.Lock()
	m.patterns = append(m.patterns, pattern)
	m.mu.Unlock()
}

// HandleFunc is Handle for a function.
func (m *adminMux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(h))
}

// Patterns returns the registered patterns, sorted.
func (m *adminMux) Patterns() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := slices.Clone(m.patterns)
	slices.Sort(out)
	return out
}

func (m *adminMux) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, pattern := m.mux.Handler(r)
	if pattern != "" {
		m.mux.ServeHTTP(w, r)
		return
	}
	// No pattern matches: ServeMux's own handler would answer 404, or 405
	// with an Allow header when the path exists for other methods. Let it
	// decide the status and keep its headers, but answer with a problem.
	probe := &statusProbe{h: http.Header{}}
	h.ServeHTTP(probe, r)
	if probe.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", probe.h.Get("Allow"))
		httpx.WriteProblem(w, httpx.NewProblem(http.StatusMethodNotAllowed, "method-not-allowed",
			r.Method+" is not allowed on "+clipPath(r.URL.Path)+"; allowed: "+probe.h.Get("Allow")))
		return
	}
	httpx.WriteProblem(w, httpx.NewProblem(http.StatusNotFound, "no-route",
		"no admin route for "+r.Method+" "+clipPath(r.URL.Path)+"; the API is described at /openapi.yaml"))
}

func clipPath(p string) string {
	if len(p) > 200 {
		return p[:200] + "…"
	}
	return strings.ToValidUTF8(p, "?")
}

// statusProbe records the status and headers ServeMux's fallback handler
// would send, and discards its body.
type statusProbe struct {
	h      http.Header
	status int
}

func (p *statusProbe) Header() http.Header { return p.h }

func (p *statusProbe) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
	}
}

func (p *statusProbe) Write(b []byte) (int, error) {
	p.WriteHeader(http.StatusOK)
	return len(b), nil
}

// serveOpenAPI answers GET /openapi.yaml with the API contract.
func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/yaml")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(docs.OpenAPI)
}
