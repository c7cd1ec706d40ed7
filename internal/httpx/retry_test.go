package httpx

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"
)

func TestRetryDelay(t *testing.T) {
	p := RetryPolicy{MaxDelay: 3 * time.Second}
	for _, tc := range []struct {
		name  string
		err   error
		retry bool
		max   time.Duration
	}{
		{"503 with a hint", fmt.Errorf("x: %w", NewProblem(503, "engine-unavailable", "").Retry(2)), true, 2 * time.Second},
		{"hint over the cap", NewProblem(503, "engine-unavailable", "").Retry(60), true, 3 * time.Second},
		{"503 without a hint", NewProblem(503, "x", ""), true, 3 * time.Second},
		{"502", NewProblem(502, "x", ""), true, 3 * time.Second},
		{"504", NewProblem(504, "x", ""), true, 3 * time.Second},
		{"500", NewProblem(500, "x", ""), false, 0},
		{"507", NewProblem(507, "storage-full", ""), false, 0},
		{"409", NewProblem(409, "conflict", "").Retry(1), false, 0},
		{"connection refused", &url.Error{Op: "Post", URL: "http://x", Err: errors.New("connection refused")}, true, 3 * time.Second},
		{"caller cancelled", &url.Error{Op: "Post", URL: "http://x", Err: context.Canceled}, false, 0},
		{"other", errors.New("decoding answer"), false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for attempt := range 6 {
				d, ok := RetryDelay(tc.err, attempt, p)
				if ok != tc.retry || d > tc.max || (ok && d <= 0) {
					t.Fatalf("attempt %d: %s %v, want retry=%v within %s", attempt, d, ok, tc.retry, tc.max)
				}
			}
		})
	}
}

func TestRetryStopsAsTold(t *testing.T) {
	ctx := context.Background()
	fast := RetryPolicy{Attempts: 4, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond}
	n := 0
	err := Retry(ctx, fast, func(context.Context, int) error {
		n++
		return NewProblem(http.StatusServiceUnavailable, "x", "")
	})
	if n != 4 || err == nil {
		t.Fatalf("%d attempts, err %v: want 4 and the last error", n, err)
	}
	n = 0
	err = Retry(ctx, fast, func(_ context.Context, i int) error {
		n++
		if i < 2 {
			return NewProblem(http.StatusBadGateway, "x", "")
		}
		return nil
	})
	if n != 3 || err != nil {
		t.Fatalf("%d attempts, err %v: want success on the third", n, err)
	}
	n = 0
	err = Retry(ctx, fast, func(context.Context, int) error { n++; return NewProblem(http.StatusConflict, "x", "") })
	if n != 1 || err == nil {
		t.Fatalf("a conflict was tried %d times", n)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	n = 0
	_ = Retry(cctx, RetryPolicy{Attempts: 5, BaseDelay: time.Hour}, func(context.Context, int) error {
		n++
		return NewProblem(http.StatusServiceUnavailable, "x", "")
	})
	if n != 1 {
		t.Fatalf("%d attempts after the context ended", n)
	}
}
