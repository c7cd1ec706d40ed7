package retry_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plexushq/plexus/clock"
	"github.com/plexushq/plexus/retry"
)

func newClock() *clock.Manual { return clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) }

func drain(b *retry.Budget) (n int) {
	for b.Withdraw() {
		n++
	}
	return n
}

// TestBudgetRatioAndFloor: 100 requests at 20% plus 1/s over the 10s
// window allow 20 + 10 retries.
func TestBudgetRatioAndFloor(t *testing.T) {
	clk := newClock()
	b := retry.NewBudget(0.2, 1, clk)
	for range 100 {
		b.Deposit()
	}
	if got := drain(b); got != 30 {
		t.Fatalf("100 requests at 20%% + 1/s allowed %d retries, want 30", got)
	}
}

// TestBudgetForgetsOldRequests: requests older than the window bank
// nothing. The gateway's old token bucket kept up to 100 retries banked by
// any past traffic, so a quiet hour bought the next outage 100 retries.
func TestBudgetForgetsOldRequests(t *testing.T) {
	clk := newClock()
	b := retry.NewBudget(0.2, 0, clk)
	for range 1000 {
		b.Deposit()
	}
	clk.Advance(time.Hour)
	if b.Withdraw() {
		t.Fatal("a retry allowed by requests an hour old")
	}
	for range 10 {
		b.Deposit()
	}
	if got := drain(b); got != 2 {
		t.Fatalf("10 requests at 20%% allowed %d retries, want 2", got)
	}
}

// TestBudgetSlidesWithTheWindow: retries spent count against the budget
// until they leave the window.
func TestBudgetSlidesWithTheWindow(t *testing.T) {
	clk := newClock()
	b := retry.NewBudget(0.5, 0, clk)
	for range 10 {
		b.Deposit()
	}
	if got := drain(b); got != 5 {
		t.Fatalf("allowed %d, want 5", got)
	}
	clk.Advance(5 * time.Second) // the requests and retries are still in the window
	if b.Withdraw() {
		t.Fatal("the spent budget refilled inside the window")
	}
	for range 2 {
		b.Deposit()
	}
	if got := drain(b); got != 1 {
		t.Fatalf("allowed %d after 2 more requests, want 1", got)
	}
	clk.Advance(retry.Window) // everything left the window
	if b.Withdraw() {
		t.Fatal("a retry without requests in the window")
	}
}

// TestBudgetConcurrentNeverOvershoots: concurrent withdrawals never take
// more than the budget allows.
func TestBudgetConcurrentNeverOvershoots(t *testing.T) {
	clk := newClock()
	b := retry.NewBudget(0.1, 0, clk)
	for range 1000 {
		b.Deposit()
	}
	var got atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if b.Withdraw() {
					got.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if got.Load() != 100 {
		t.Fatalf("%d retries taken concurrently, want exactly 100", got.Load())
	}
}

func TestIdempotent(t *testing.T) {
	for m, want := range map[string]bool{"GET": true, "HEAD": true, "OPTIONS": true, "TRACE": true, "PUT": true,
		"DELETE": true, "POST": false, "PATCH": false, "CONNECT": false, "get": false} {
		if retry.Idempotent(m) != want {
			t.Errorf("Idempotent(%s) = %v", m, !want)
		}
	}
}

// TestDialError: a refused connection is a dial error (nothing was sent);
// a reset after the request went out is not.
func TestDialError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/")
	if err == nil || !retry.DialError(err) {
		t.Fatalf("refused connection: %v is not a dial error", err)
	}
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln2.Close()
	go func() {
		c, err := ln2.Accept()
		if err == nil {
			buf := make([]byte, 1024)
			_, _ = c.Read(buf) // the request arrived
			c.Close()
		}
	}()
	_, err = (&http.Client{Timeout: 5 * time.Second}).Get("http://" + ln2.Addr().String() + "/")
	if err == nil || retry.DialError(err) {
		t.Fatalf("a connection closed after the request is not a dial error: %v", err)
	}
	if retry.DialError(errors.New("dial")) || retry.DialError(nil) {
		t.Fatal("plain errors are not dial errors")
	}
}

func TestRetryableStatus(t *testing.T) {
	for _, s := range []int{502, 503, 504} {
		if !retry.RetryableStatus(s) {
			t.Errorf("%d not retryable", s)
		}
	}
	for _, s := range []int{200, 400, 404, 429, 500, 501} {
		if retry.RetryableStatus(s) {
			t.Errorf("%d retryable", s)
		}
	}
}

func TestFailure(t *testing.T) {
	for _, c := range []struct {
		name   string
		status int
		err    error
		want   bool
	}{
		{"2xx", 200, nil, false},
		{"3xx", 304, nil, false},
		{"4xx is the client's", 404, nil, false},
		{"429", 429, nil, false},
		{"500", 500, nil, true},
		{"503", 503, nil, true},
		{"refused", 0, &net.OpError{Op: "dial", Err: errors.New("refused")}, true},
		{"deadline", 0, context.DeadlineExceeded, true},
		{"wrapped deadline", 0, fmt.Errorf("get: %w", context.DeadlineExceeded), true},
		{"caller cancelled", 0, context.Canceled, false},
		{"wrapped cancel", 0, fmt.Errorf("get: %w", context.Canceled), false},
	} {
		if got := retry.Failure(c.status, c.err); got != c.want {
			t.Errorf("%s: Failure = %v, want %v", c.name, got, c.want)
		}
	}
}

func BenchmarkBudgetDeposit(b *testing.B) {
	bu := retry.NewBudget(0.2, 1, nil)
	b.ReportAllocs()
	for b.Loop() {
		bu.Deposit()
	}
}

func BenchmarkBudgetDepositParallel(b *testing.B) {
	bu := retry.NewBudget(0.2, 1, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			bu.Deposit()
		}
	})
}
