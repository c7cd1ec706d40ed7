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

func errBadBody(err error) *httpx.Problem {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errTooLarge(mbe.Limit)
	}
	return httpx.NewProblem(http.StatusBadRequest, "bad-body", "reading the request body failed: "+err.Error())
}

func errNoRoute(method, path string) *httpx.Problem {
	return httpx.NewProblem(http.StatusNotFound, "no-route",
		fmt.Sprintf("no route for %s %s: use /api/{service}/… or a configured route", method, truncate(path, 200)))
}

func errBadPath(path string) *httpx.Problem {
	return httpx.NewProblem(http.StatusBadRequest, "bad-path",
		fmt.Sprintf("path %q has . or .. segments", truncate(path, 200)))
}

func errRateLimited(retryAfter time.Duration) *httpx.Problem {
	secs := ceilSeconds(retryAfter)
	p := httpx.NewProblem(http.StatusTooManyRequests, "rate-limited", "Rate limit exceeded").
		With("error", "Rate limit exceeded").With("retryAfter", secs)
	p.RetryAfter = secs
	return p
}

// upstreamProblem maps a failed try to 504 (timeout), 413 or 400 (the
// client's body) or 502 (anything else).
func (g *Gateway) upstreamProblem(ex *exchange, ctx context.Context, err error, timeout time.Duration) *httpx.Problem {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errTooLarge(mbe.Limit)
	}
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
	if ex.r.Context().Err() != nil {
		ex.status = 499
		return
	}
	httpx.WriteProblem(ex.w, p)
}

// errorKind names a transport error without leaking addresses.
func errorKind(err error) string {
	var ne interface{ Timeout() bool }
	switch {
	case isDialError(err):
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
