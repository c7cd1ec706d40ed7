package gateway

import (
	"context"
	"errors"
	"time"

	"github.com/plexushq/plexus/balance"
	"github.com/plexushq/plexus/breaker"
	"github.com/plexushq/plexus/internal/h1"
	"github.com/plexushq/plexus/retry"
)

// forwarding is one request's state across its tries.
type forwarding struct {
	ctx     context.Context
	cancel  context.CancelCauseFunc
	timer   *time.Timer
	timeout time.Duration
	picker  balance.Picker
	key     uint64
	rb      *reqBody
	rest    string
	tried   balance.Mask
	// The upstream request's fields, the request and the answer; pooled
	// with the exchange, reused by every try and request.
	fields []h1.Field
	req    h1.Request
	resp   h1.Response
}

// recycled returns an empty forwarding that keeps f's buffers (their
// contents cleared, so nothing of a request outlives it).
func (f *forwarding) recycled() forwarding {
	clear(f.fields)
	clear(f.resp.Header)
	clear(f.resp.Trailer)
	var n forwarding
	n.fields, n.resp.Header, n.resp.Trailer = f.fields[:0], f.resp.Header[:0], f.resp.Trailer[:0]
	return n
}

// tryResult is one try's outcome.
type tryResult struct {
	resp    *h1.Response // nil when the try failed
	err     error
	latency time.Duration
	blame   culprit
	verdict verdict
}

// forward sends the request to one instance after another until one
// answers well, a retry is not allowed, or instances run out. It returns
// the verdict for the service breaker, and whether the client connection
// must be aborted.
func (g *Gateway) forward(ex *exchange, svc *service, p *pool, set *settings, f *forwarding) (verdict, bool) {
	g.outboundFields(ex, f)
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
				g.problem(ex, g.upstreamProblem(ex, f.ctx, lastErr, f.timeout))
				return verdictFailed, false
			}
			g.problem(ex, errNoAvailable(ex.service, allOpen))
			return verdictFailed, false
		}
		f.tried = f.tried.With(idx)
		ibr := p.brs[idx]
		var itk breaker.Ticket
		if ibr != nil {
			var err error
			if itk, err = ibr.Allow(); err != nil || itk.Probe() && !f.rb.complete() {
				if err == nil { // half-opened after the check in serviceTicket
					ibr.Release(itk)
				}
				breakerSkipped(ex, p.ups[idx])
				continue
			}
		}
		allOpen = false
		tr := g.try(ex, svc, p, idx, f)
		settle(ibr, itk, tr.verdict)
		u := p.ups[idx]
		if tr.blame != clientFault && !triedAll(f.tried, p.set.Len()) && g.shouldRetry(ex, svc, set, f.ctx, tr.resp, tr.err, f.rb) {
			u.ep.End(tr.latency, false)
			if lastErr = tr.err; tr.resp != nil {
				discard(tr.resp)
				lastErr = errRetriedStatus
			}
			g.metrics.retries.WithLabelValues(ex.svcLabel).Inc()
			continue
		}
		return g.finishTry(ex, u, f, tr)
	}
}

// finishTry answers with the last try: its response, or the problem of its
// failure, blamed on whoever caused it.
func (g *Gateway) finishTry(ex *exchange, u *upstream, f *forwarding, tr tryResult) (verdict, bool) {
	if tr.blame == clientFault {
		u.ep.Cancel() // the time went to the client: nothing learnt about the instance
	} else {
		u.ep.End(tr.latency, tr.verdict == verdictOK)
	}
	switch {
	case tr.blame == clientFault:
		if tr.resp != nil {
			_ = tr.resp.Body().Close() // an answer to a request cut short
		}
		g.problem(ex, g.bodyProblem(ex, f, f.rb.clientErr()))
		return verdictNone, false
	case tr.err != nil:
		g.problem(ex, g.upstreamProblem(ex, f.ctx, tr.err, f.timeout))
		return tr.verdict, false
	}
	return tr.verdict, g.respond(ex, f.ctx, f.timer, tr.resp)
}

// try sends one try to instance idx and feeds passive health with what it
// says about the instance.
func (g *Gateway) try(ex *exchange, svc *service, p *pool, idx int, f *forwarding) tryResult {
	u := p.ups[idx]
	ex.attempts++
	ex.upstream = u.id
	endTry := g.startTry(ex, u, f)
	start := time.Now()
	err := g.roundTrip(f.ctx, ex, u, f)
	tr := tryResult{err: err, latency: time.Since(start)}
	status := 0
	if err == nil {
		tr.resp, status = &f.resp, f.resp.Status
	}
	endTry(status, err)
	tr.blame = classify(err, f.cause(), f.rb.clientErr())
	tr.verdict = verdictOf(tr.blame, status)
	if tr.blame == upstreamFault {
		g.metrics.upstreamErr(ex.svcLabel, f.ctx, err)
	}
	switch tr.verdict {
	case verdictFailed:
		svc.failed(p, idx, g.clock.Now())
	case verdictOK:
		u.succeeded()
	}
	return tr
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

// shouldRetry allows another try when the method is idempotent and the
// body can be sent again, on connection errors and 502/503/504, within the
// attempt limit and the service's retry budget. A connection that could
// not even be opened is retried for any method, as nothing was sent.
func (g *Gateway) shouldRetry(ex *exchange, svc *service, set *settings, ctx context.Context, resp *h1.Response, err error, rb *reqBody) bool {
	if ex.attempts > set.attempts || ctx.Err() != nil || rb.clientErr() != nil {
		return false
	}
	idem := retry.Idempotent(ex.r.Method)
	if err != nil {
		if !(idem && rb.replayable()) && !(retry.DialError(err) && rb.untouched()) {
			return false
		}
	} else if !retry.RetryableStatus(resp.Status) || !idem || !rb.replayable() || upgradeType(ex.r.Header) != "" {
		return false
	}
	if !svc.budget.Load().Withdraw() {
		g.metrics.budgetExhausted.WithLabelValues(ex.svcLabel).Inc()
		return false
	}
	return true
}
