package retry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/plexushq/plexus/problem"
)

func TestDelay(t *testing.T) {
	p := Policy{MaxDelay: 3 * time.Second}
	for _, tc := range []struct {
		name  string
		err   error
		retry bool
		max   time.Duration
	}{
		{"503 with a hint", fmt.Errorf("x: %w", problem.New(503, "engine-unavailable", "").Retry(2)), true, 2 * time.Second},
		{"hint over the cap", problem.New(503, "engine-unavailable", "").Retry(60), true, 3 * time.Second},
		{"503 without a hint", problem.New(503, "x", ""), true, 3 * time.Second},
		{"502", problem.New(502, "x", ""), true, 3 * time.Second},
		{"504", problem.New(504, "x", ""), true, 3 * time.Second},
		{"500", problem.New(500, "x", ""), false, 0},
		{"507", problem.New(507, "storage-full", ""), false, 0},
		{"409", problem.New(409, "conflict", "").Retry(1), false, 0},
		{"connection refused", &url.Error{Op: "Post", URL: "http://x", Err: errors.New("connection refused")}, true, 3 * time.Second},
		{"caller cancelled", &url.Error{Op: "Post", URL: "http://x", Err: context.Canceled}, false, 0},
		{"other", errors.New("decoding answer"), false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for attempt := range 6 {
				d, ok := Delay(tc.err, attempt, p)
				if ok != tc.retry || d > tc.max || (ok && d <= 0) {
					t.Fatalf("attempt %d: %s %v, want retry=%v within %s", attempt, d, ok, tc.retry, tc.max)
				}
			}
		})
	}
}

func TestDoStopsAsTold(t *testing.T) {
	ctx := context.Background()
	fast := Policy{Attempts: 4, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond}
	n := 0
	err := Do(ctx, fast, func(context.Context, int) error {
		n++
		return problem.New(http.StatusServiceUnavailable, "x", "")
	})
	if n != 4 || err == nil {
		t.Fatalf("%d attempts, err %v: want 4 and the last error", n, err)
	}
	n = 0
	err = Do(ctx, fast, func(_ context.Context, i int) error {
		n++
		if i < 2 {
			return problem.New(http.StatusBadGateway, "x", "")
		}
		return nil
	})
	if n != 3 || err != nil {
		t.Fatalf("%d attempts, err %v: want success on the third", n, err)
	}
	n = 0
	err = Do(ctx, fast, func(context.Context, int) error { n++; return problem.New(http.StatusConflict, "x", "") })
	if n != 1 || err == nil {
		t.Fatalf("a conflict was tried %d times", n)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	n = 0
	_ = Do(cctx, Policy{Attempts: 5, BaseDelay: time.Hour}, func(context.Context, int) error {
		n++
		return problem.New(http.StatusServiceUnavailable, "x", "")
	})
	if n != 1 {
		t.Fatalf("%d attempts after the context ended", n)
	}
}
