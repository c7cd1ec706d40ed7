package gateway

import (
	"context"
	"time"

	"github.com/plexushq/plexus/breaker"
	"github.com/plexushq/plexus/registry"
	"github.com/plexushq/plexus/retry"
)

// proxy answers what can be answered without the body — rate limit,
// unknown service, body too large by its declared length, no healthy
// instance, open breaker — without reading a byte of it (so no 100
// Continue goes out before the request is known to be routable and
// allowed), then forwards under the request's timeout. It reports whether
// the client connection must be aborted.
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
	svc, pl, err := g.admit(ex, name, snap, set)
	if err != nil {
		g.problem(ex, err)
		return false
	}
	rb, err := g.prepareBody(ex, set)
	if err != nil {
		g.problem(ex, err)
		return false
	}
	f := g.newForwarding(ex, rt, set, pl, rb, rest)
	defer f.stop()
	tk, ok := g.serviceTicket(ex, f, pl, rb)
	if !ok {
		return false
	}
	if err := g.bufferForReplay(ex, rb); err != nil {
		settle(pl.breaker, tk, verdictNone)
		g.problem(ex, g.bodyProblem(ex, f, err))
		return false
	}
	v, abort := g.forward(ex, svc, pl, set, f)
	settle(pl.breaker, tk, v)
	return abort
}

// admit checks what needs no body: the service is registered (404), the
// declared body fits (413), an instance is healthy (503) and the service's
// breaker is not open (503). It returns the service and its pool.
func (g *Gateway) admit(ex *exchange, name string, snap *registry.ServiceSnapshot, set *settings) (*service, *pool, error) {
	if snap == nil || len(snap.Instances) == 0 {
		return nil, nil, errUnknownService(name)
	}
	if set.maxBody > 0 && ex.r.ContentLength > set.maxBody {
		return nil, nil, errTooLarge(set.maxBody)
	}
	if len(snap.Healthy) == 0 {
		return nil, nil, errNoHealthy(name)
	}
	svc := g.serviceFor(name)
	pl := svc.poolFor(snap, set)
	if pl.set.Len() == 0 { // healthy instances, but none with a usable URL
		return nil, nil, errNoHealthy(name)
	}
	svc.budget.Load().Deposit()
	if br := pl.breaker; br != nil && br.State() == breaker.Open {
		if in := br.Info(); in.State == breaker.Open && in.RetryAfter > 0 {
			return nil, nil, errBreakerOpen(name, in)
		}
	}
	return svc, pl, nil
}

// serviceTicket asks the service's breaker to let the request through. A
// half-open breaker's probe slots go only to requests whose body is whole:
// while any breaker of the service is not closed, the body (up to 64 KiB)
// is read first, so a slow upload never holds a probe slot; a larger body
// waits like an open breaker's requests. false: the answer is written.
func (g *Gateway) serviceTicket(ex *exchange, f *forwarding, pl *pool, rb *reqBody) (breaker.Ticket, bool) {
	if !rb.complete() && !pl.allClosed() && !g.wholeBody(ex, f, pl, rb) {
		return breaker.Ticket{}, false
	}
	br := pl.breaker
	if br == nil {
		return breaker.Ticket{}, true
	}
	tk, err := br.Allow()
	if err == nil && tk.Probe() && !rb.complete() {
		br.Release(tk) // half-opened since the check above
		if !g.wholeBody(ex, f, pl, rb) {
			return breaker.Ticket{}, false
		}
		tk, err = br.Allow()
	}
	if err != nil {
		g.problem(ex, errBreakerOpen(ex.service, br.Info()))
		return breaker.Ticket{}, false
	}
	return tk, true
}

// wholeBody buffers the body before a probe; false when the answer (the
// client's fault, or a body too large to probe with) is written.
func (g *Gateway) wholeBody(ex *exchange, f *forwarding, pl *pool, rb *reqBody) bool {
	err := rb.buffer(maxBufferedBody)
	if err == nil {
		return true
	}
	if err == errBodyTooBig {
		in := breaker.Info{State: breaker.HalfOpen, RetryAfter: time.Second}
		if pl.breaker != nil {
			in = pl.breaker.Info()
		}
		g.problem(ex, errProbeBodyTooLarge(ex.service, in))
		return false
	}
	g.problem(ex, g.bodyProblem(ex, f, err))
	return false
}

// bufferForReplay reads small bodies of idempotent requests with a
// declared length into memory, so they can be sent again to another
// instance.
func (g *Gateway) bufferForReplay(ex *exchange, rb *reqBody) error {
	if rb.complete() || !retry.Idempotent(ex.r.Method) || rb.n <= 0 || rb.n > maxBufferedBody {
		return nil
	}
	return rb.buffer(maxBufferedBody)
}

// allClosed reports that the service's breaker and every instance's are
// closed, so no request of the pool can be a half-open probe.
func (p *pool) allClosed() bool {
	if p.breaker != nil && p.breaker.State() != breaker.Closed {
		return false
	}
	for _, b := range p.brs {
		if b != nil && b.State() != breaker.Closed {
			return false
		}
	}
	return true
}

// newForwarding starts the request's timeout. When it fires while the
// gateway waits for the client's body, the wait is the client's fault:
// the read is ended at once and the cause is errClientSlow (408, nothing
// charged); otherwise the upstream ran out of time (errUpstreamTimeout).
func (g *Gateway) newForwarding(ex *exchange, rt *route, set *settings, p *pool, rb *reqBody, rest string) *forwarding {
	f := &ex.fwd // pooled with the exchange: no allocation per request
	*f = ex.fwd.recycled()
	f.timeout, f.picker, f.rb, f.rest = set.timeout, p.picker, rb, rest
	if rt != nil && rt.timeout > 0 {
		f.timeout = rt.timeout
	}
	if rt != nil && rt.picker != nil {
		f.picker = rt.picker
	}
	ctx, cancel := context.WithCancelCause(ex.r.Context())
	f.ctx, f.cancel = ctx, cancel
	f.timer = time.AfterFunc(f.timeout, func() {
		if rb.waitingOnClient() {
			rb.expire()
			cancel(errClientSlow)
			return
		}
		cancel(errUpstreamTimeout)
	})
	if set.strategy == "hash" || (rt != nil && rt.picker != nil) {
		f.key = set.hashKey.of(ex.r, ex.clientIP)
	}
	return f
}

func (f *forwarding) stop() {
	f.timer.Stop()
	f.cancel(nil)
}

// cause is the request context's cancel cause, nil while it runs.
func (f *forwarding) cause() error {
	if f.ctx.Err() == nil {
		return nil
	}
	return context.Cause(f.ctx)
}
