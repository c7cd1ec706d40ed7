package breaker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plexushq/plexus/clock"
)

func newClock() *clock.Manual { return clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) }

// call runs one admitted call with the given result; it fails the test if
// the breaker refuses.
func call(t *testing.T, b *Breaker, ok bool) {
	t.Helper()
	tk, err := b.Allow()
	if err != nil {
		t.Fatalf("Allow: %v (state %v)", err, b.State())
	}
	b.Done(tk, ok)
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	got := New("x", Config{}).Config()
	want := Config{FailureThreshold: 5, FailureRatio: 0.5, MinRequests: 20, Window: 10 * time.Second,
		ResetTimeout: 60 * time.Second, HalfOpenRequests: 3}
	if got != want {
		t.Errorf("defaults %+v, want %+v", got, want)
	}
	for _, bad := range []Config{{FailureRatio: 1.5}, {Window: -1}, {ResetTimeout: -1}, {MinRequests: -1}, {HalfOpenRequests: -2}} {
		if bad.Validate() == nil {
			t.Errorf("Validate(%+v) = nil", bad)
		}
	}
	if err := (Config{FailureThreshold: -1, FailureRatio: -1}).Validate(); err != nil {
		t.Errorf("disabling rules: %v", err)
	}
	for s, want := range map[State]string{Closed: "closed", Open: "open", HalfOpen: "half-open", 7: "State(7)"} {
		if s.String() != want {
			t.Errorf("%d.String() = %q", int(s), s.String())
		}
	}
}

func TestOpensOnConsecutiveFailures(t *testing.T) {
	t.Parallel()
	clk := newClock()
	b := New("svc", Config{FailureThreshold: 3, FailureRatio: -1}, WithClock(clk))
	for _, ok := range []bool{false, false, true, false, false} {
		call(t, b, ok)
	}
	if b.State() != Closed {
		t.Fatalf("a success between failures must restart the run: %v", b.State())
	}
	call(t, b, false)
	if b.State() != Open {
		t.Fatalf("3 consecutive failures: %v", b.State())
	}
	if _, err := b.Allow(); !errors.Is(err, ErrOpen) {
		t.Fatalf("Allow while open: %v", err)
	}
	clk.Advance(15 * time.Second)
	in := b.Info()
	if in.State != Open || in.RetryAfter != 45*time.Second || !in.OpenedAt.Equal(clk.Now().Add(-15*time.Second)) {
		t.Errorf("info %+v", in)
	}
}

// TestOpensOnRatio is the seed's defect: 4 failures out of 5 calls never
// tripped because each success reset the count.
func TestOpensOnRatio(t *testing.T) {
	t.Parallel()
	clk := newClock()
	b := New("svc", Config{FailureThreshold: 5, FailureRatio: 0.5, MinRequests: 5}, WithClock(clk))
	for _, ok := range []bool{false, false, true, false} {
		call(t, b, ok)
	}
	if b.State() != Closed {
		t.Fatalf("below minimum volume: %v", b.State())
	}
	call(t, b, false) // 4 of 5 failed, never 5 in a row
	if b.State() != Open {
		t.Fatalf("4/5 failures with volume met: %v (%+v)", b.State(), b.Info())
	}
}

func TestRatioBelowThresholdStaysClosed(t *testing.T) {
	t.Parallel()
	b := New("svc", Config{FailureRatio: 0.5, MinRequests: 10}, WithClock(newClock()))
	for i := range 100 {
		call(t, b, i%3 != 0) // 1 in 3 fails
	}
	if in := b.Info(); in.State != Closed || in.Requests != 100 || in.Failures != 34 {
		t.Errorf("info %+v", in)
	}
}

func TestWindowForgetsOldResults(t *testing.T) {
	t.Parallel()
	clk := newClock()
	b := New("svc", Config{FailureThreshold: -1, FailureRatio: 0.5, MinRequests: 5, Window: 10 * time.Second}, WithClock(clk))
	for range 3 {
		call(t, b, false)
	}
	clk.Advance(11 * time.Second) // the 3 failures leave the window
	for _, ok := range []bool{true, false, true, false, true} {
		call(t, b, ok)
	}
	if in := b.Info(); in.State != Closed || in.Failures != 2 || in.Requests != 5 {
		t.Fatalf("old failures still counted: %+v", in)
	}
	clk.Advance(5 * time.Second) // all 5 still in the window
	call(t, b, false)
	if b.State() != Open {
		t.Fatalf("3 of 6 in window: %v", b.State())
	}
}

func TestHalfOpenAfterResetTimeout(t *testing.T) {
	t.Parallel()
	clk := newClock()
	var mu sync.Mutex
	var changes []string
	var b *Breaker
	b = New("svc", Config{FailureThreshold: 1, ResetTimeout: time.Minute, HalfOpenRequests: 2}, WithClock(clk),
		OnStateChange(func(name string, from, to State) {
			_ = b.Info() // allowed: called outside the state lock
			mu.Lock()
			changes = append(changes, fmt.Sprintf("%s:%v>%v", name, from, to))
			mu.Unlock()
		}))
	call(t, b, false)
	clk.Advance(time.Minute - time.Nanosecond)
	if _, err := b.Allow(); !errors.Is(err, ErrOpen) {
		t.Fatalf("before reset timeout: %v", err)
	}
	clk.Advance(time.Nanosecond)
	t1, err := b.Allow()
	if err != nil || b.State() != HalfOpen {
		t.Fatalf("after reset timeout: %v, %v", err, b.State())
	}
	t2, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Allow(); !errors.Is(err, ErrOpen) {
		t.Fatalf("third probe admitted with HalfOpenRequests 2: %v", err)
	}
	if in := b.Info(); in.RetryAfter != time.Second {
		t.Errorf("half-open retry after %v", in.RetryAfter)
	}
	b.Done(t1, true)
	if b.State() != HalfOpen {
		t.Fatalf("closed after 1 of 2 successes")
	}
	t3, err := b.Allow() // a probe slot is free again
	if err != nil {
		t.Fatalf("slot after a success: %v", err)
	}
	b.Done(t2, true)
	if b.State() != Closed {
		t.Fatalf("2 successes: %v", b.State())
	}
	b.Done(t3, false) // from the half-open generation: ignored
	if in := b.Info(); in.State != Closed || in.Failures != 0 || !in.OpenedAt.IsZero() {
		t.Fatalf("stale probe result counted: %+v", in)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"svc:closed>open", "svc:open>half-open", "svc:half-open>closed"}
	if !slices.Equal(changes, want) {
		t.Errorf("changes %v, want %v", changes, want)
	}
}

func TestHalfOpenFailureReopens(t *testing.T) {
	t.Parallel()
	clk := newClock()
	b := New("svc", Config{FailureThreshold: 2, ResetTimeout: 30 * time.Second}, WithClock(clk))
	call(t, b, false)
	call(t, b, false)
	clk.Advance(30 * time.Second)
	p1, _ := b.Allow()
	p2, _ := b.Allow()
	clk.Advance(time.Second)
	b.Done(p1, false)
	in := b.Info()
	if in.State != Open || in.RetryAfter != 30*time.Second || !in.OpenedAt.Equal(clk.Now()) {
		t.Fatalf("after failed probe: %+v", in)
	}
	b.Done(p2, true) // stale: must not count toward closing
	clk.Advance(30 * time.Second)
	for range 2 {
		call(t, b, true)
	}
	if b.State() != HalfOpen {
		t.Fatalf("closed with 2 of 3 successes (stale success counted?): %v", b.State())
	}
	call(t, b, true)
	if b.State() != Closed {
		t.Fatalf("3 successes: %v", b.State())
	}
}

func TestStaleTicketsIgnored(t *testing.T) {
	t.Parallel()
	clk := newClock()
	b := New("svc", Config{FailureThreshold: 2, ResetTimeout: time.Second, HalfOpenRequests: 1}, WithClock(clk))
	slow, _ := b.Allow() // admitted while closed, finishes much later
	call(t, b, false)
	call(t, b, false)
	clk.Advance(time.Second)
	probe, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	b.Done(slow, false) // from the closed generation
	if b.State() != HalfOpen {
		t.Fatalf("stale failure reopened the breaker: %v", b.State())
	}
	b.Done(Ticket{}, false)
	b.Done(probe, true)
	if b.State() != Closed {
		t.Fatalf("probe success: %v", b.State())
	}
	b.Done(probe, false) // a ticket used twice
	if in := b.Info(); in.Failures != 0 {
		t.Fatalf("reused ticket counted: %+v", in)
	}
}

func TestAbandonedProbesDoNotWedge(t *testing.T) {
	t.Parallel()
	clk := newClock()
	b := New("svc", Config{FailureThreshold: 1, ResetTimeout: 10 * time.Second, HalfOpenRequests: 1}, WithClock(clk))
	call(t, b, false)
	clk.Advance(10 * time.Second)
	if _, err := b.Allow(); err != nil { // a probe that never reports back
		t.Fatal(err)
	}
	clk.Advance(9 * time.Second)
	if _, err := b.Allow(); !errors.Is(err, ErrOpen) {
		t.Fatalf("second probe too early: %v", err)
	}
	clk.Advance(time.Second)
	if _, err := b.Allow(); err != nil {
		t.Fatalf("still wedged after another reset timeout: %v", err)
	}
}

func TestHalfOpenProbeBoundUnderConcurrency(t *testing.T) {
	t.Parallel()
	clk := newClock()
	b := New("svc", Config{FailureThreshold: 1, ResetTimeout: time.Second, HalfOpenRequests: 3}, WithClock(clk))
	call(t, b, false)
	clk.Advance(time.Second)
	var admitted atomic.Int64
	var wg sync.WaitGroup
	tickets := make(chan Ticket, 64)
	start := make(chan struct{})
	for range 64 {
		wg.Go(func() {
			<-start
			if tk, err := b.Allow(); err == nil {
				admitted.Add(1)
				tickets <- tk
			} else if !errors.Is(err, ErrOpen) {
				t.Errorf("Allow: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	close(tickets)
	if n := admitted.Load(); n != 3 {
		t.Fatalf("%d concurrent probes admitted, want 3", n)
	}
	for tk := range tickets {
		b.Done(tk, true)
	}
	if b.State() != Closed {
		t.Fatalf("3 probe successes: %v", b.State())
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	clk := newClock()
	var changes atomic.Int64
	b := New("svc", Config{FailureThreshold: 3, MinRequests: 10, ResetTimeout: 50 * time.Millisecond, Window: time.Second},
		WithClock(clk), OnStateChange(func(string, State, State) { changes.Add(1) }))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				clk.Advance(time.Millisecond)
				_ = b.Info()
				time.Sleep(50 * time.Microsecond)
			}
		}
	})
	var workers sync.WaitGroup
	for w := range 4 {
		workers.Go(func() {
			for k := range 5000 {
				tk, err := b.Allow()
				if err != nil {
					continue
				}
				b.Done(tk, (k+w)%5 >= 3) // 60% failures
			}
		})
	}
	workers.Wait()
	close(stop)
	wg.Wait()
	if changes.Load() == 0 {
		t.Errorf("no state change with 60%% failures")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.probes < 0 || b.probes > b.cfg.HalfOpenRequests {
		t.Errorf("probes in flight %d", b.probes)
	}
}

// TestStateChangesInOrderWithoutDeadlock flips a breaker from many
// goroutines while the callback reads Info and even calls Allow/Done; the
// reported changes must form one chain (each from is the previous to).
func TestStateChangesInOrderWithoutDeadlock(t *testing.T) {
	t.Parallel()
	clk := newClock()
	var mu sync.Mutex
	var seen []change
	var b *Breaker
	b = New("svc", Config{FailureThreshold: 1, ResetTimeout: time.Millisecond, HalfOpenRequests: 1}, WithClock(clk),
		OnStateChange(func(_ string, from, to State) {
			_ = b.Info()
			if to == HalfOpen {
				if tk, err := b.Allow(); err == nil {
					b.Done(tk, true)
				}
			}
			mu.Lock()
			seen = append(seen, change{from, to})
			mu.Unlock()
		}))
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for k := range 2000 {
					if k%10 == 0 {
						clk.Advance(time.Millisecond)
					}
					if tk, err := b.Allow(); err == nil {
						b.Done(tk, (k+w)%3 == 0)
					}
				}
			})
		}
		wg.Wait()
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("deadlock")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) < 3 {
		t.Fatalf("only %d changes", len(seen))
	}
	prev := Closed
	for i, c := range seen {
		if c.from != prev || c.from == c.to {
			t.Fatalf("change %d: %v→%v after %v", i, c.from, c.to, prev)
		}
		prev = c.to
	}
	if prev != b.State() {
		t.Fatalf("last reported %v, state %v", prev, b.State())
	}
}

// TestRecordClassifiesWithTheHook: the breaker knows no HTTP (it used to
// classify by status code, IsFailure): Record counts what WithFailure says,
// and releases what it does not count.
func TestRecordClassifiesWithTheHook(t *testing.T) {
	t.Parallel()
	errBusy := errors.New("busy, try later")
	b := New("svc", Config{FailureThreshold: 2}, WithFailure(func(err error) bool { return !errors.Is(err, errBusy) }))
	for _, err := range []error{errBusy, errBusy, errBusy, nil, errBusy} {
		tk, aerr := b.Allow()
		if aerr != nil {
			t.Fatalf("refused after %v", err)
		}
		b.Record(tk, err)
	}
	if b.State() != Closed {
		t.Fatalf("errors the hook does not count opened the breaker: %v", b.State())
	}
	for range 2 {
		tk, _ := b.Allow()
		b.Record(tk, io.ErrUnexpectedEOF)
	}
	if b.State() != Open {
		t.Fatalf("two counted failures left it %v", b.State())
	}
}

// TestRecordDefault: by default every error but the caller's own
// cancellation is a failure, and a cancelled probe frees its slot.
func TestRecordDefault(t *testing.T) {
	t.Parallel()
	clk := newClock()
	b := New("svc", Config{FailureThreshold: 1, ResetTimeout: time.Second, HalfOpenRequests: 1}, WithClock(clk))
	tk, _ := b.Allow()
	b.Record(tk, fmt.Errorf("proxy: %w", context.Canceled))
	if b.State() != Closed {
		t.Fatal("a cancelled call counted as a failure")
	}
	tk, _ = b.Allow()
	b.Record(tk, &net.OpError{Op: "dial", Err: os.ErrDeadlineExceeded})
	if b.State() != Open {
		t.Fatal("a timeout did not count")
	}
	clk.Advance(time.Second)
	probe, err := b.Allow()
	if err != nil || !probe.Probe() {
		t.Fatalf("no probe after the reset timeout: %v", err)
	}
	b.Record(probe, context.Canceled) // the probe's caller gave up
	if _, err := b.Allow(); err != nil {
		t.Fatalf("a cancelled probe kept its slot: %v", err)
	}
}

func TestClosedPathDoesNotAllocate(t *testing.T) {
	b := New("svc", Config{})
	if a := testing.AllocsPerRun(1000, func() {
		tk, _ := b.Allow()
		b.Done(tk, true)
	}); a != 0 {
		t.Errorf("%v allocations per call", a)
	}
}

func BenchmarkAllowDone(b *testing.B) {
	br := New("svc", Config{})
	b.ReportAllocs()
	for b.Loop() {
		tk, _ := br.Allow()
		br.Done(tk, true)
	}
}

func BenchmarkAllowDoneParallel(b *testing.B) {
	br := New("svc", Config{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tk, _ := br.Allow()
			br.Done(tk, true)
		}
	})
}

func BenchmarkAllowOpen(b *testing.B) {
	br := New("svc", Config{FailureThreshold: 1})
	tk, _ := br.Allow()
	br.Done(tk, false)
	b.ReportAllocs()
	for b.Loop() {
		_, _ = br.Allow()
	}
}

// A ticket whose call said nothing about the backend is released: a probe
// slot comes free for another probe, and no result is counted either way.
func TestReleaseFreesProbeSlotWithoutAVerdict(t *testing.T) {
	t.Parallel()
	clk := newClock()
	b := New("x", Config{FailureThreshold: 1, ResetTimeout: time.Second, HalfOpenRequests: 1}, WithClock(clk))
	closed, err := b.Allow()
	if err != nil || closed.Probe() {
		t.Fatalf("closed Allow: probe %v err %v; want a non-probe ticket", closed.Probe(), err)
	}
	b.Release(closed) // nothing held, nothing counted
	if in := b.Info(); in.Requests != 0 || b.State() != Closed {
		t.Fatalf("releasing a closed ticket counted a result: %+v", in)
	}
	call(t, b, false) // opens
	clk.Advance(2 * time.Second)
	probe, err := b.Allow()
	if err != nil || !probe.Probe() || b.State() != HalfOpen {
		t.Fatalf("half-open Allow: probe %v err %v state %v", probe.Probe(), err, b.State())
	}
	if _, err := b.Allow(); !errors.Is(err, ErrOpen) {
		t.Fatalf("second probe admitted with HalfOpenRequests 1: %v", err)
	}
	b.Release(probe)
	if b.State() != HalfOpen {
		t.Fatalf("Release changed the state to %v", b.State())
	}
	next, err := b.Allow()
	if err != nil || !next.Probe() {
		t.Fatalf("after Release the slot is still taken: %v", err)
	}
	if _, err := b.Allow(); !errors.Is(err, ErrOpen) {
		t.Fatalf("a second probe admitted while the freed slot is taken again: %v", err)
	}
	b.Done(next, true)
	if b.State() != Closed {
		t.Fatalf("state %v after a successful probe, want closed", b.State())
	}
}
