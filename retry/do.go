package retry

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/plexushq/plexus/problem"
)

// Policy bounds how a Plexus Go client repeats a request that is safe
// to repeat: a publish with its message id, an append with its expected
// version and event ids. The zero value works.
type Policy struct {
	// Attempts in all, the first included. Default 8; 1 turns retries off.
	Attempts int
	// MaxDelay caps one wait, a longer Retry-After hint included. Default 5s.
	MaxDelay time.Duration
	// BaseDelay is the first backoff when the answer has no hint (a
	// connection that failed). Default 200ms, doubling, with full jitter.
	BaseDelay time.Duration
}

func (p Policy) withDefaults() Policy {
	if p.Attempts <= 0 {
		p.Attempts = 8
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 5 * time.Second
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = 200 * time.Millisecond
	}
	return p
}

// Delay says whether an attempt that failed with err may be repeated,
// and after how long: the answers of the shared failure contract that
// carry a retry hint (503 engine-unavailable or busy), 502 and 504 from a
// proxy in front of the node, and requests that failed on the way (the
// node went away, a connection was reset). Never a 4xx, a 500 or a 507
// (storage full lasts), nor the caller's own cancellation.
func Delay(err error, attempt int, p Policy) (time.Duration, bool) {
	p = p.withDefaults()
	backoff := func() time.Duration {
		d := min(p.BaseDelay<<min(attempt, 10), p.MaxDelay)
		return rand.N(d) + time.Millisecond
	}
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return 0, false
	}
	var pr *problem.Problem
	if errors.As(err, &pr) {
		switch pr.Status {
		case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
			if pr.RetryAfter > 0 {
				// The hint, spread a little so that clients turned away
				// together do not all come back at once.
				d := min(time.Duration(pr.RetryAfter)*time.Second, p.MaxDelay)
				return d/2 + rand.N(d/2+1), true
			}
			return backoff(), true
		}
		return 0, false
	}
	var ue *url.Error
	var ne net.Error
	if errors.As(err, &ue) || errors.As(err, &ne) {
		return backoff(), true
	}
	return 0, false
}

// Do runs attempt until it succeeds, fails in a way Delay does not
// repeat, the attempts run out or ctx ends; it returns the last error.
// attempt gets the attempt's number, from 0.
func Do(ctx context.Context, p Policy, attempt func(ctx context.Context, n int) error) error {
	p = p.withDefaults()
	var err error
	for n := 0; n < p.Attempts; n++ {
		if err = attempt(ctx, n); err == nil {
			return nil
		}
		d, ok := Delay(err, n, p)
		if !ok || n == p.Attempts-1 {
			return err
		}
		if Sleep(ctx, d) != nil {
			return err
		}
	}
	return err
}
