package gateway

import (
	"net/http"
	"net/netip"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// exchange is the state of one request as it passes through the gateway;
// exchanges are pooled, so nothing may keep one after ServeHTTP returns.
type exchange struct {
	c        *compiled
	w        http.ResponseWriter
	r        *http.Request
	start    time.Time
	reqID    []string // shared by the answer and the upstream request
	peer     netip.Addr
	peerStr  string
	clientIP string
	trusted  bool
	corsVary bool // Vary: Origin was set by CORS

	service  string // as requested
	svcLabel string // bounded: the name when the registry knows it, else "unknown"
	route    string // bounded: a configured route's name, "api", "health" or "none"
	upstream string // instance id of the last try
	attempts int
	status   int
	bytes    int64
	span     trace.Span // nil without a tracer provider
}

var exchanges = sync.Pool{New: func() any { return new(exchange) }}

// ServeHTTP serves the gateway listener: /health, configured routes,
// /api/{service}/… and CORS preflights.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ex := exchanges.Get().(*exchange)
	*ex = exchange{c: g.cfg.Load(), w: w, r: r, start: time.Now(), route: "none", svcLabel: "none"}
	abort := g.serve(ex)
	g.finish(ex)
	*ex = exchange{}
	exchanges.Put(ex)
	if abort {
		// The answer's head is out but its body broke: abort the client
		// connection so the client sees a truncated answer, not a short one.
		panic(http.ErrAbortHandler)
	}
}

// serve runs the request through identification, CORS and routing. It
// reports whether the client connection must be aborted.
func (g *Gateway) serve(ex *exchange) bool {
	r, c := ex.r, ex.c
	h := ex.w.Header()
	if id := r.Header[hdrRequestID]; len(id) > 0 && validRequestID(id[0]) {
		ex.reqID = id[:1]
	} else {
		ex.reqID = []string{newRequestID()}
	}
	h[hdrRequestID] = ex.reqID
	ex.peer, ex.peerStr = peerAddr(r.RemoteAddr)
	ex.trusted = c.trust.trusted(ex.peer)
	ex.clientIP = c.trust.clientIP(ex.peer, ex.peerStr, r.Header[hdrXFF])
	if c.cors != nil && c.cors.handle(ex) {
		return false // preflight answered
	}
	path := r.URL.Path
	if path == "/health" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		ex.route = "health"
		g.health(ex)
		return false
	}
	escaped := r.URL.EscapedPath()
	if hasDotSegment(escaped) {
		g.problem(ex, errBadPath(escaped))
		return false
	}
	rt, rest := matchRoute(c.routes, r.Host, r.Method, escaped)
	var name string
	if rt != nil {
		name, ex.route = rt.service, rt.name
	} else if svc, apiRest, ok := splitAPIPath(escaped); ok {
		name, rest, ex.route = svc, apiRest, "api"
	} else {
		g.problem(ex, errNoRoute(r.Method, path))
		return false
	}
	ex.service = name
	return g.proxy(ex, rt, name, rest)
}

// finish records the request in metrics and the access log.
func (g *Gateway) finish(ex *exchange) {
	d := time.Since(ex.start)
	if ex.status == 0 {
		ex.status = 499 // the client went away before an answer
	}
	g.metrics.observe(ex, d)
	if ex.c.access != nil {
		g.accessLog(ex, d)
	}
	endSpan(ex)
}
