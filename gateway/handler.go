package gateway

import (
	"net/http"
	"net/netip"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/plexushq/plexus/internal/httpguard"
)

// exchange is the state of one request as it passes through the gateway;
// exchanges are pooled, so nothing may keep one after ServeHTTP returns.
type exchange struct {
	c               *compiled
	g               *Gateway
	w               http.ResponseWriter
	r               *http.Request
	rc              http.ResponseController
	noWriteDeadline bool            // the writer cannot have deadlines (tests' recorders)
	fwd             forwarding      // the request's state across its tries (proxy)
	body            *httpguard.Body // the client's body once the gateway reads it; nil before and without one
	start           time.Time
	reqID           []string // shared by the answer and the upstream request
	peer            netip.Addr
	peerStr         string
	clientIP        string
	trusted         bool
	corsVary        bool // Vary: Origin was set by CORS

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
	fwd := ex.fwd.recycled()
	*ex = exchange{c: g.cfg.Load(), g: g, w: w, r: r, rc: *http.NewResponseController(w), start: time.Now(),
		route: "none", svcLabel: "none", fwd: fwd}
	// Every answer of this request must be taken by the client within the
	// send idle timeout from now or from its previous write; this also
	// replaces a deadline the connection's previous request left.
	ex.extendWrite()
	abort := g.serve(ex)
	if ex.body != nil {
		ex.body.Detach()
	}
	g.finish(ex)
	*ex = exchange{fwd: ex.fwd.recycled()}
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
	if r.URL.Path == "/health" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		ex.route = "health"
		g.health(ex)
		return false
	}
	escaped := r.URL.EscapedPath()
	path, why := normalizePath(escaped, c.src.Paths)
	if why != "" {
		g.problem(ex, errBadPath(escaped, why))
		return false
	}
	rt, rest := matchRoute(c.routes, r.Host, r.Method, path)
	var name string
	if rt != nil {
		name, ex.route = rt.service, rt.name
	} else if svc, apiRest, ok := splitAPIPath(path); ok {
		name, rest, ex.route = svc, apiRest, "api"
	} else {
		g.problem(ex, errNoRoute(r.Method, r.URL.Path))
		return false
	}
	ex.service = name
	return g.proxy(ex, rt, name, rest)
}

// beforeHead prepares the head of an answer of the gateway's own: the
// connection closes after it when the request was chunked or its body is
// left unread (httpguard.MustClose), the unread rest of the body is given
// up on, and the client gets a fresh send idle timeout.
func (ex *exchange) beforeHead() {
	ex.beforeRelay()
	ex.abandonBody()
}

// beforeRelay prepares the head of an upstream's answer: like beforeHead,
// but a body still being sent upstream is left to finish (or to its idle
// timeout).
func (ex *exchange) beforeRelay() {
	unread := httpguard.HasBody(ex.r) && (ex.body == nil || !ex.body.Complete())
	if httpguard.MustClose(ex.r, unread) {
		httpguard.SetClose(ex.w.Header())
	}
	ex.extendWrite()
}

// abandonBody ends the wait for a body the gateway answers without
// reading (or without reading to its end): net/http would otherwise try to
// read the rest of it after the answer, however slowly it comes.
func (ex *exchange) abandonBody() {
	switch {
	case ex.body == nil:
		httpguard.AbandonBody(ex.w, ex.r)
	case !ex.body.Complete():
		ex.body.Expire()
	}
}

// clientGone reports that the client went away. net/http also cancels the
// request's context when reading its body fails (a body idle timeout); that
// client is still there to be told 408.
func (ex *exchange) clientGone() bool {
	return ex.r.Context().Err() != nil && (ex.body == nil || ex.body.Err() == nil)
}

// extendWrite gives the client the send idle timeout from now to take
// the next bytes of the answer. Writers that cannot have deadlines are
// left alone.
func (ex *exchange) extendWrite() {
	if ex.noWriteDeadline {
		return
	}
	if err := ex.rc.SetWriteDeadline(time.Now().Add(ex.g.sendIdle)); err != nil {
		ex.noWriteDeadline = true
	}
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
