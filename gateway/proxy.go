package gateway

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/plexushq/plexus/balance"
	"github.com/plexushq/plexus/breaker"
)

// errUpstreamTimeout is the cancel cause when a request's timeout fires.
var errUpstreamTimeout = errors.New("upstream timeout")

// proxy applies the rate limit, the body limit and the service breaker,
// then forwards. It reports whether the client connection must be aborted.
func (g *Gateway) proxy(ex *exchange, rt *route, name, rest string) bool {
	set := ex.c.settingsOf(name)
	snap := g.disc.Service(name)
	ex.svcLabel = "unknown"
	if snap != nil {
		ex.svcLabel = name
	}
	g.startSpan(ex, rt)
	lim := set.limiter
	if rt != nil && rt.limiter != nil {
		lim = rt.limiter
	}
	if lim != nil && !g.rateLimit(ex, lim) {
		return false
	}
	rb, p := prepareBody(ex, set)
	if p != nil {
		g.problem(ex, p)
		return false
	}
	if snap == nil || len(snap.Healthy) == 0 {
		g.problem(ex, errNoHealthy(name))
		return false
	}
	svc := g.serviceFor(name)
	pl := svc.poolFor(snap, set)
	if pl.set.Len() == 0 { // healthy instances, but none with a usable URL
		g.problem(ex, errNoHealthy(name))
		return false
	}
	svc.budget.deposit(set.budget)
	var tk breaker.Ticket
	if pl.breaker != nil {
		var err error
		if tk, err = pl.breaker.Allow(); err != nil {
			g.problem(ex, errBreakerOpen(name, pl.breaker.Info()))
			return false
		}
	}
	ok, abort := g.forward(ex, svc, pl, rt, set, rest, rb)
	if pl.breaker != nil {
		pl.breaker.Done(tk, ok)
	}
	return abort
}

// forwarding is one request's state across its tries.
type forwarding struct {
	ctx     context.Context
	timer   *time.Timer
	timeout time.Duration
	picker  balance.Picker
	key     uint64
	hdr     http.Header
	rb      *reqBody
	rest    string
	tried   balance.Mask
}

// forward sends the request to one instance after another until one
// answers well, a retry is not allowed, or instances run out. It reports
// whether the outcome counts as a success for the service breaker, and
// whether the client connection must be aborted.
func (g *Gateway) forward(ex *exchange, svc *service, p *pool, rt *route, set *settings, rest string, rb *reqBody) (ok, abort bool) {
	f := forwarding{timeout: set.timeout, picker: p.picker, rb: rb, rest: rest}
	if rt != nil && rt.timeout > 0 {
		f.timeout = rt.timeout
	}
	if rt != nil && rt.picker != nil {
		f.picker = rt.picker
	}
	ctx, cancel := context.WithCancelCause(ex.r.Context())
	defer cancel(nil)
	f.ctx = ctx
	f.timer = time.AfterFunc(f.timeout, func() { cancel(errUpstreamTimeout) })
	defer f.timer.Stop()
	if set.strategy == "hash" || (rt != nil && rt.picker != nil) {
		f.key = set.hashKey.of(ex.r, ex.clientIP)
	}
	f.hdr = g.outboundHeader(ex)
	var lastErr error
	allOpen := true
	// Each pick of a service's instances counts, so that a service with more
	// than 64 instances (beyond what the exclusion mask can hold) cannot
	// loop on an instance whose breaker stays open.
	for picks := 0; ; picks++ {
		idx := -1
		if picks < p.set.Len() {
			idx = g.pickIndex(p, f.picker, f.key, f.tried)
		}
		if idx < 0 {
			if lastErr != nil {
				g.problem(ex, g.upstreamProblem(ex, ctx, lastErr, f.timeout))
				return !isUpstreamFailure(ctx, lastErr, rb), false
			}
			g.problem(ex, errNoAvailable(ex.service, allOpen))
			return false, false
		}
		f.tried = f.tried.With(idx)
		ibr := p.brs[idx]
		var itk breaker.Ticket
		if ibr != nil {
			var err error
			if itk, err = ibr.Allow(); err != nil {
				breakerSkipped(ex, p.ups[idx])
				continue // this instance's breaker is open
			}
		}
		allOpen = false
		resp, latency, failure, err := g.try(ex, svc, p, idx, &f)
		if ibr != nil {
			ibr.Done(itk, !failure)
		}
		u := p.ups[idx]
		if !triedAll(f.tried, p.set.Len()) && g.shouldRetry(ex, svc, set, ctx, resp, err, rb) {
			u.ep.End(latency, false)
			if lastErr = err; resp != nil {
				discard(resp)
				lastErr = errRetriedStatus
			}
			g.metrics.retries.WithLabelValues(ex.svcLabel).Inc()
			continue
		}
		if err != nil {
			u.ep.End(latency, false)
			g.problem(ex, g.upstreamProblem(ex, ctx, err, f.timeout))
			return !failure, false
		}
		abort = g.respond(ex, ctx, f.timer, resp)
		u.ep.End(latency, !failure)
		return !failure, abort
	}
}

// try sends one try to instance idx and feeds passive health; failure
// says whether it counts against the instance.
func (g *Gateway) try(ex *exchange, svc *service, p *pool, idx int, f *forwarding) (resp *http.Response, latency time.Duration, failure bool, err error) {
	u := p.ups[idx]
	ex.attempts++
	ex.upstream = u.id
	endTry := g.startTry(ex, u, f.hdr)
	start := time.Now()
	resp, err = g.roundTrip(f.ctx, ex, u, f.hdr, f.rb, f.rest)
	latency = time.Since(start)
	endTry(resp, err)
	if err != nil {
		failure = isUpstreamFailure(f.ctx, err, f.rb)
		if failure {
			g.metrics.upstreamErr(ex.svcLabel, f.ctx, err)
		}
	} else {
		failure = breaker.IsFailure(resp.StatusCode, nil)
	}
	g.passiveHealth(svc, p, idx, failure, err)
	return resp, latency, failure, err
}

// triedAll reports that every instance of the pool has had a try, so a
// last 502/503/504 passes through as the upstream sent it.
func triedAll(tried balance.Mask, n int) bool {
	return n <= 64 && tried == balance.Mask(uint64(1)<<uint(n)-1)
}

var errRetriedStatus = errors.New("upstream answered 502, 503 or 504")

// pickIndex picks an instance that is not excluded; when passive health
// has ejected every instance not yet tried, ejections are ignored rather
// than failing the request.
func (g *Gateway) pickIndex(p *pool, picker balance.Picker, key uint64, tried balance.Mask) int {
	ej := p.exclusions(g.clock.Now())
	idx := picker.Pick(p.set, key, tried|ej)
	if idx < 0 && ej != 0 {
		idx = picker.Pick(p.set, key, tried)
	}
	return idx
}

// passiveHealth feeds the ejection logic; a client's own failure (gone,
// body read error) does not count against the instance.
func (g *Gateway) passiveHealth(svc *service, p *pool, idx int, failure bool, err error) {
	if failure {
		svc.failed(p, idx, g.clock.Now())
		return
	}
	if err == nil {
		p.ups[idx].succeeded()
	}
}

// isUpstreamFailure tells upstream faults (connection errors, timeouts)
// from the client's (it went away, its body broke).
func isUpstreamFailure(ctx context.Context, err error, rb *reqBody) bool {
	if err == nil {
		return false
	}
	if rb.clientErr() != nil {
		return false
	}
	if ctx.Err() != nil && !errors.Is(context.Cause(ctx), errUpstreamTimeout) {
		return false // the client canceled
	}
	return true
}

// shouldRetry allows another try when the method is idempotent and the
// body can be sent again, on connection errors and 502/503/504, within the
// attempt limit and the service's retry budget. A connection that could
// not even be opened is retried for any method, as nothing was sent.
func (g *Gateway) shouldRetry(ex *exchange, svc *service, set *settings, ctx context.Context, resp *http.Response, err error, rb *reqBody) bool {
	if ex.attempts > set.attempts || ctx.Err() != nil || rb.clientErr() != nil {
		return false
	}
	idem := idempotent(ex.r.Method)
	if err != nil {
		if !(idem && rb.replayable()) && !(isDialError(err) && rb.untouched()) {
			return false
		}
	} else {
		switch resp.StatusCode {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		default:
			return false
		}
		if !idem || !rb.replayable() || upgradeType(ex.r.Header) != "" {
			return false
		}
	}
	if !svc.budget.withdraw(g.clock.Now()) {
		g.metrics.budgetExhausted.WithLabelValues(ex.svcLabel).Inc()
		return false
	}
	return true
}

func idempotent(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete, http.MethodTrace:
		return true
	}
	return false
}

// isDialError reports a failure to open the connection: nothing was sent.
func isDialError(err error) bool {
	var ne *net.OpError
	if errors.As(err, &ne) {
		return ne.Op == "dial"
	}
	return false
}

// roundTrip sends one try to an instance.
func (g *Gateway) roundTrip(ctx context.Context, ex *exchange, u *upstream, hdr http.Header, rb *reqBody, rest string) (*http.Response, error) {
	r := ex.r
	out := r.WithContext(ctx)
	out.URL = upstreamURL(u, rest, r.URL.RawQuery)
	out.Host = "" // the instance's host; X-Forwarded-Host keeps the client's
	out.RequestURI = ""
	out.Header = hdr
	out.Proto, out.ProtoMajor, out.ProtoMinor = "HTTP/1.1", 1, 1
	out.Close = false
	out.TransferEncoding = nil
	out.Body, out.ContentLength, out.GetBody = rb.forAttempt()
	u.ep.Begin()
	return ex.c.transport.RoundTrip(out)
}

// upstreamURL joins the instance's base URL and the (escaped) rest of the
// request path, keeping the query as sent.
func upstreamURL(u *upstream, rest, rawQuery string) *url.URL {
	esc := rest
	if u.basePath != "" {
		esc = u.basePath + rest
	}
	out := &url.URL{Scheme: u.base.Scheme, Host: u.base.Host, RawQuery: rawQuery}
	if strings.IndexByte(esc, '%') < 0 {
		out.Path = esc
		return out
	}
	p, err := url.PathUnescape(esc)
	if err != nil {
		out.Path = esc
		return out
	}
	out.Path, out.RawPath = p, esc
	return out
}

// outboundHeader builds the upstream request's header: the client's minus
// hop-by-hop headers, plus forwarding, request id and trace context.
func (g *Gateway) outboundHeader(ex *exchange) http.Header {
	r := ex.r
	in := r.Header
	conn := connectionTokens(in)
	h := make(http.Header, len(in)+6)
	for k, v := range in {
		if hopHeaders[k] || (conn != nil && contains(conn, k)) {
			continue
		}
		h[k] = v
	}
	if up := upgradeType(in); up != "" {
		h[hdrConnection] = upgradeValue
		h[hdrUpgrade] = in[hdrUpgrade][:1]
	}
	if headerHasToken(in[hdrTE], "trailers") {
		h[hdrTE] = trailersValue
	}
	setForwarded(ex, in, h)
	h[hdrRequestID] = ex.reqID
	// With a tracer the gateway's span is the upstream's parent; without
	// one the client's traceparent passes unchanged, or a new trace starts.
	if !injectTrace(ex, h) {
		if tp := in[hdrTraceparent]; len(tp) != 1 || !validTraceparent(tp[0]) {
			h[hdrTraceparent] = []string{newTraceparent()}
			delete(h, hdrTracestate)
		}
	}
	if _, ok := h[hdrUserAgent]; !ok {
		h[hdrUserAgent] = emptyValue // keep Go's default User-Agent out
	}
	return h
}

// setForwarded sets X-Forwarded-For/Proto/Host. Values sent by a trusted
// proxy are kept (the peer appended to X-Forwarded-For); anyone else's are
// replaced, so clients cannot spoof their address.
func setForwarded(ex *exchange, in, h http.Header) {
	r := ex.r
	if ex.trusted {
		if prior := in[hdrXFF]; len(prior) > 0 {
			h[hdrXFF] = []string{strings.Join(prior, ", ") + ", " + ex.peerStr}
		} else {
			h[hdrXFF] = []string{ex.peerStr}
		}
		if len(in[hdrXFProto]) == 0 {
			h[hdrXFProto] = protoValue(r)
		}
		if len(in[hdrXFHost]) == 0 {
			h[hdrXFHost] = []string{r.Host}
		}
		return
	}
	vs := make([]string, 2) // one allocation for both headers
	vs[0], vs[1] = ex.peerStr, r.Host
	h[hdrXFF], h[hdrXFHost] = vs[0:1:1], vs[1:2:2]
	h[hdrXFProto] = protoValue(r)
	delete(h, hdrForwarded)
	delete(h, hdrXRealIP)
}

func protoValue(r *http.Request) []string {
	if r.TLS != nil {
		return httpsValue
	}
	return httpValue
}
