package gateway

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/plexushq/plexus/breaker"
	"github.com/plexushq/plexus/internal/httpx"
	"github.com/plexushq/plexus/retry"
)

// The gateway's own answers are RFC 9457 problems built here, in one place.
// Every 502, 503 and 504 carries Retry-After.

func errNoHealthy(service string) *httpx.Problem {
	p := httpx.NewProblem(http.StatusServiceUnavailable, "no-healthy-instance",
		"No healthy instances found for service: "+service).With("service", service)
	p.RetryAfter = 1
	return p.With("retryAfter", 1)
}

func errNoAvailable(service string, breakersOpen bool) *httpx.Problem {
	cause := "every instance failed or was tried"
	if breakersOpen {
		cause = "the circuit breakers of all its instances are open"
	}
	p := httpx.NewProblem(http.StatusServiceUnavailable, "no-available-instance",
		fmt.Sprintf("No healthy instances found for service: %s (%s)", service, cause)).With("service", service)
	p.RetryAfter = 1
	return p.With("retryAfter", 1)
}

func errBreakerOpen(service string, info breaker.Info) *httpx.Problem {
	secs := ceilSeconds(info.RetryAfter)
	p := httpx.NewProblem(http.StatusServiceUnavailable, "circuit-open",
		fmt.Sprintf("Circuit breaker is OPEN for service: %s (%d consecutive or recent failures)", service, info.Failures)).
		With("service", service).With("retryAfter", secs)
	p.RetryAfter = secs
	return p
}

func errTooLarge(limit int64) *httpx.Problem {
	return httpx.NewProblem(http.StatusRequestEntityTooLarge, "body-too-large",
		fmt.Sprintf("request body is larger than %d bytes", limit)).With("maxBodyBytes", limit)
}

// errBadBody is the problem of a client body that could not be read: 413
// over the limit, 408 too slow, 400 malformed (a broken chunked encoding)
// or cut short.
func errBadBody(err error) *httpx.Problem {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errTooLarge(mbe.Limit)
	}
	var te interface{ Timeout() bool }
	if errors.As(err, &te) && te.Timeout() {
		return errBodyTimeout()
	}
	return httpx.NewProblem(http.StatusBadRequest, "bad-body", "reading the request body failed: "+err.Error())
}

func errBodyTimeout() *httpx.Problem {
	return httpx.NewProblem(http.StatusRequestTimeout, "request-timeout",
		"the request body did not arrive in time; nothing was charged to the service")
}

// bodyProblem is the answer when the client caused a request to fail:
// its body broke or was too slow (bodyErr), or the timeout ran out while
// the gateway waited for it. A client that went away gets nothing
// (problem writes nothing for it).
func (g *Gateway) bodyProblem(ex *exchange, f *forwarding, bodyErr error) *httpx.Problem {
	if bodyErr != nil {
		return errBadBody(bodyErr)
	}
	if errors.Is(f.cause(), errClientSlow) {
		return errBodyTimeout()
	}
	return httpx.NewProblem(499, "client-gone", "the client went away")
}

func errNoRoute(method, path string) *httpx.Problem {
	return httpx.NewProblem(http.StatusNotFound, "no-route",
		fmt.Sprintf("no route for %s %s: use /api/{service}/… or a configured route", method, truncate(path, 200)))
}

func errBadPath(path, why string) *httpx.Problem {
	return httpx.NewProblem(http.StatusBadRequest, "bad-path",
		fmt.Sprintf("path %q is refused: %s", truncate(path, 200), why))
}

// errUnknownService answers for a name the registry has never had an
// instance of: a client mistake, not an outage (no Retry-After).
func errUnknownService(service string) *httpx.Problem {
	return httpx.NewProblem(http.StatusNotFound, "unknown-service",
		fmt.Sprintf("no service named %q is registered", service)).With("service", service)
}

// errProbeBodyTooLarge answers a request that cannot be a half-open
// breaker's probe: its body would have to stream in before the upstream
// is known to be back.
func errProbeBodyTooLarge(service string, info breaker.Info) *httpx.Problem {
	secs := ceilSeconds(info.RetryAfter)
	p := httpx.NewProblem(http.StatusServiceUnavailable, "circuit-open",
		fmt.Sprintf("Circuit breaker is HALF-OPEN for service: %s; until it closes it takes only requests with bodies of at most %d bytes",
			service, maxBufferedBody)).With("service", service).With("retryAfter", secs)
	p.RetryAfter = secs
	return p
}

func errRateLimited(retryAfter time.Duration) *httpx.Problem {
	secs := ceilSeconds(retryAfter)
	p := httpx.NewProblem(http.StatusTooManyRequests, "rate-limited", "Rate limit exceeded").
		With("error", "Rate limit exceeded").With("retryAfter", secs)
	p.RetryAfter = secs
	return p
}

// upstreamProblem maps a try the upstream failed to 504 (timeout) or 502
// (anything else).
func (g *Gateway) upstreamProblem(ex *exchange, ctx context.Context, err error, timeout time.Duration) *httpx.Problem {
	if errors.Is(context.Cause(ctx), errUpstreamTimeout) {
		p := httpx.NewProblem(http.StatusGatewayTimeout, "upstream-timeout",
			fmt.Sprintf("service %s did not answer within %s", ex.service, timeout)).With("service", ex.service)
		p.RetryAfter = 1
		return p
	}
	p := httpx.NewProblem(http.StatusBadGateway, "upstream-failed",
		fmt.Sprintf("service %s failed: %s (%d %s)", ex.service, errorKind(err), ex.attempts, plural(ex.attempts, "try", "tries"))).
		With("service", ex.service)
	if errors.Is(err, errRetriedStatus) {
		p.Detail = fmt.Sprintf("service %s answered 502, 503 or 504 on every try (%d)", ex.service, ex.attempts)
	}
	p.RetryAfter = 1
	return p
}

// problem writes p unless the client is gone.
func (g *Gateway) problem(ex *exchange, err error) {
	var p *httpx.Problem
	if !errors.As(err, &p) {
		p = httpx.NewProblem(http.StatusInternalServerError, "internal", "internal error")
	}
	ex.status = p.Status
	if p.Status == 499 || ex.clientGone() {
		ex.status = 499
		return
	}
	ex.beforeHead()
	httpx.WriteProblem(ex.w, p)
}

// errorKind names a transport error without leaking addresses.
func errorKind(err error) string {
	var ne interface{ Timeout() bool }
	switch {
	case retry.DialError(err):
		return "connection refused or unreachable"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, errRetriedStatus):
		return "bad gateway status"
	}
	return "connection error"
}

func ceilSeconds(d time.Duration) int {
	s := int(math.Ceil(d.Seconds()))
	if s < 1 {
		s = 1
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
