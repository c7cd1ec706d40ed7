package client

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/plexushq/plexus/retry"
)

// RetryPolicy configures retries. Zero fields take the defaults.
type RetryPolicy struct {
	// MaxAttempts is the most attempts per call, the first included.
	// Default 3; 1 disables retries.
	MaxAttempts int
	// BaseDelay is the first backoff cap; each retry doubles it. Default 50ms.
	BaseDelay time.Duration
	// MaxDelay caps the backoff. Default 1s.
	MaxDelay time.Duration
	// Budget is the retries allowed per call over the last 10 seconds (the
	// meaning of package retry, the same as the gateway's retries.budget).
	// Default 0.2.
	Budget float64
	// MinPerSecond retries are allowed per second even with few calls.
	// Default 1.
	MinPerSecond float64
	// MaxRetryAfter is the longest Retry-After honoured; a longer one ends
	// the call with the 429/503 answer. Default 5s.
	MaxRetryAfter time.Duration
}

func (p *RetryPolicy) defaults() {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 3
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = 50 * time.Millisecond
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = time.Second
	}
	if p.Budget <= 0 {
		p.Budget = 0.2
	}
	if p.MinPerSecond <= 0 {
		p.MinPerSecond = 1
	}
	if p.MaxRetryAfter <= 0 {
		p.MaxRetryAfter = 5 * time.Second
	}
}

// backoff is the full-jitter delay before retry number n (1-based): uniform
// in [0, min(MaxDelay, BaseDelay·2^(n-1))], so clients that failed together
// do not retry together.
func (p *RetryPolicy) backoff(n int) time.Duration {
	ceil := p.BaseDelay << min(n-1, 30)
	if ceil > p.MaxDelay || ceil <= 0 {
		ceil = p.MaxDelay
	}
	return time.Duration(rand.Int64N(int64(ceil) + 1))
}

// retryReason says why an attempt's result may be retried ("" = it may not).
func retryReason(status int, err error, idempotent bool) string {
	switch {
	case errors.Is(err, ErrNoInstances), errors.Is(err, ErrAllOpen), errors.Is(err, ErrResponseTooLarge):
		return ""
	case err != nil && retry.DialError(err):
		return "connect"
	case err != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		return ""
	case !idempotent:
		return ""
	case err != nil:
		return "connection"
	case retry.RetryableStatus(status):
		return strconv.Itoa(status)
	case status == http.StatusTooManyRequests:
		return "429"
	}
	return ""
}

// maxRetryAfterSecs caps parsed Retry-After values (a day) against overflow.
const maxRetryAfterSecs = 86400

// retryAfter parses a Retry-After header (seconds or an HTTP date).
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	v := h.Get("Retry-After")
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(min(s, maxRetryAfterSecs)) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}
