package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/eventstore"
	"github.com/plexushq/plexus/internal/enginetest"
)

// recorder collects the positions a handler saw.
type recorder struct {
	mu   sync.Mutex
	seen []uint64
	ch   chan struct{}
}

func newRecorder() *recorder { return &recorder{ch: make(chan struct{}, 1)} }

func (r *recorder) handle(_ context.Context, e eventstore.Envelope) error {
	r.mu.Lock()
	r.seen = append(r.seen, e.Position)
	r.mu.Unlock()
	select {
	case r.ch <- struct{}{}:
	default:
	}
	return nil
}

func (r *recorder) positions() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]uint64(nil), r.seen...)
}

func (r *recorder) waitLen(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for len(r.positions()) < n {
		select {
		case <-r.ch:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("saw %d events, want %d", len(r.positions()), n)
		}
	}
}

func subscribe(t *testing.T, s *eventstore.Store, group string, h eventstore.Handler, o eventstore.SubscribeOptions) *eventstore.Subscription {
	t.Helper()
	sub, err := s.Subscribe(ctxT(t), group, h, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopSub(t, sub) })
	return sub
}

func stopSub(t *testing.T, sub *eventstore.Subscription) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := sub.Stop(ctx); err != nil {
		t.Errorf("stop subscription: %v", err)
	}
}

// appendBatches makes n appends of size events each and returns the
// events' positions.
func appendBatches(t *testing.T, s *eventstore.Store, n, size int) []uint64 {
	t.Helper()
	var out []uint64
	for i := range n {
		evs := make([]eventstore.Event, size)
		for j := range evs {
			evs[j] = ev("item.added", j)
		}
		r := mustAppend(t, s, fmt.Sprintf("item-b%d", i), eventstore.AnyVersion, evs...)
		for p := r.FirstPosition; p <= r.Position; p++ {
			out = append(out, p)
		}
	}
	return out
}

// appendN appends n events one at a time and returns their positions.
func appendN(t *testing.T, s *eventstore.Store, n int, typ string) []uint64 {
	t.Helper()
	var out []uint64
	for i := range n {
		out = append(out, mustAppend(t, s, fmt.Sprintf("item-%d", i%5), eventstore.AnyVersion, ev(typ, i)).Position)
	}
	return out
}

func TestSubscriptionCatchUpLiveAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	eng := enginetest.Start(t, dir)
	s := eventstore.New(eng, eventstore.Config{})
	if err := s.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	want := appendN(t, s, 50, "item.added")
	rec := newRecorder()
	sub, err := s.Subscribe(ctxT(t), "catalog", rec.handle, eventstore.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec.waitLen(t, 50) // caught up
	want = append(want, appendN(t, s, 20, "item.added")...)
	rec.waitLen(t, 70) // live
	stopSub(t, sub)

	want = append(want, appendN(t, s, 10, "item.added")...) // while the subscriber is down
	sub, err = s.Subscribe(ctxT(t), "catalog", rec.handle, eventstore.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec.waitLen(t, 80)
	stopSub(t, sub)

	// Restart the engine on the same data dir.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := eng.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	eng2 := enginetest.Start(t, dir)
	s2 := eventstore.New(eng2, eventstore.Config{})
	if err := s2.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	want = append(want, appendN(t, s2, 5, "item.added")...)
	subscribe(t, s2, "catalog", rec.handle, eventstore.SubscribeOptions{})
	rec.waitLen(t, 85)
	want = append(want, appendN(t, s2, 5, "item.added")...)
	rec.waitLen(t, 90)
	time.Sleep(100 * time.Millisecond) // room for a stray duplicate to show up
	got := rec.positions()
	if len(got) != 90 {
		t.Fatalf("handled %d events, want 90", len(got))
	}
	for i, p := range got {
		if p != want[i] {
			t.Fatalf("event %d has position %d, want %d: gap or duplicate", i, p, want[i])
		}
	}
}

func TestSubscriptionFiltersAndFromPosition(t *testing.T) {
	s := startStore(t, nil, eventstore.Config{})
	a := mustAppend(t, s, "user-1", 0, ev("user.created", 1), ev("user.login", 1)) // one append, two types
	b := mustAppend(t, s, "order-1", 0, ev("order.placed", 1))
	c := mustAppend(t, s, "user-2", 0, ev("user.created", 2))
	logins, users, late, mid := newRecorder(), newRecorder(), newRecorder(), newRecorder()
	subscribe(t, s, "logins", logins.handle, eventstore.SubscribeOptions{Types: []string{"user.login"}})
	subscribe(t, s, "users", users.handle, eventstore.SubscribeOptions{Category: "user"})
	subscribe(t, s, "late", late.handle, eventstore.SubscribeOptions{FromPosition: b.Position})
	subscribe(t, s, "mid", mid.handle, eventstore.SubscribeOptions{FromPosition: a.Position})
	users.waitLen(t, 3)
	logins.waitLen(t, 1)
	late.waitLen(t, 2)
	mid.waitLen(t, 3)
	if got, want := users.positions(), []uint64{a.FirstPosition, a.Position, c.Position}; !slices.Equal(got, want) {
		t.Fatalf("category user: %v, want %v", got, want)
	}
	if got, want := late.positions(), []uint64{b.Position, c.Position}; !slices.Equal(got, want) {
		t.Fatalf("from position %d: %v, want %v", b.Position, got, want)
	}
	if got, want := mid.positions(), []uint64{a.Position, b.Position, c.Position}; !slices.Equal(got, want) {
		t.Fatalf("from the middle of an append (%d): %v, want %v", a.Position, got, want)
	}
	if got, want := logins.positions(), []uint64{a.Position}; !slices.Equal(got, want) {
		t.Fatalf("type user.login: %v, want %v", got, want)
	}
}

func TestPoisonEventParkedWhileLaterEventsFlow(t *testing.T) {
	s := startStore(t, nil, eventstore.Config{})
	var healed atomic.Bool
	calls := map[uint64]int{}
	var mu sync.Mutex
	ok := newRecorder()
	handler := func(ctx context.Context, e eventstore.Envelope) error {
		mu.Lock()
		calls[e.Position]++
		mu.Unlock()
		if string(e.Data) == `"poison"` && !healed.Load() {
			return errors.New("cannot digest poison")
		}
		return ok.handle(ctx, e)
	}
	other := newRecorder()
	otherCalls := map[uint64]int{}
	subscribe(t, s, "billing", handler, eventstore.SubscribeOptions{MaxAttempts: 3, Backoff: 10 * time.Millisecond})
	subscribe(t, s, "audit", func(ctx context.Context, e eventstore.Envelope) error {
		mu.Lock()
		otherCalls[e.Position]++
		mu.Unlock()
		return other.handle(ctx, e)
	}, eventstore.SubscribeOptions{})

	fine := mustAppend(t, s, "pay-1", 0, ev("pay.started", "fine"))
	poison := mustAppend(t, s, "pay-1", 1, ev("pay.started", "poison"))
	done := mustAppend(t, s, "pay-1", 2, ev("pay.done", "fine"), ev("pay.done", "fine too"))
	ok.waitLen(t, 3)
	other.waitLen(t, 4)
	if got, want := ok.positions(), []uint64{fine.Position, done.FirstPosition, done.Position}; !slices.Equal(got, want) {
		t.Fatalf("billing handled %v, want %v", got, want)
	}
	parked, err := s.Parked(ctxT(t), "billing", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(parked) != 1 || parked[0].Position != poison.Position || parked[0].Attempts != 3 ||
		parked[0].State != eventstore.ParkedWaiting || parked[0].LastError != "cannot digest poison" {
		t.Fatalf("parked: %+v", parked)
	}
	mu.Lock()
	if calls[poison.Position] != 3 {
		t.Fatalf("poison handled %d times, want 3", calls[poison.Position])
	}
	for p, n := range otherCalls {
		if n != 1 {
			t.Fatalf("audit group handled %d %d times: groups are not independent", p, n)
		}
	}
	mu.Unlock()
	if p, _ := s.Parked(ctxT(t), "audit", 0); len(p) != 0 {
		t.Fatalf("audit parked %v", p)
	}

	// The operator fixes the cause and retries: the event leaves the list.
	healed.Store(true)
	if err := s.RetryParked(ctxT(t), "billing", poison.Position); err != nil {
		t.Fatal(err)
	}
	ok.waitLen(t, 4)
	waitFor(t, func() bool { p, _ := s.Parked(ctxT(t), "billing", 0); return len(p) == 0 })

	// A second poison is skipped by the operator.
	healed.Store(false)
	p2 := mustAppend(t, s, "pay-2", 0, ev("pay.started", "poison"))
	waitFor(t, func() bool { p, _ := s.Parked(ctxT(t), "billing", 0); return len(p) == 1 })
	if err := s.SkipParked(ctxT(t), "billing", p2.Position); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Parked(ctxT(t), "billing", 0); len(p) != 0 {
		t.Fatalf("after skip: %+v", p)
	}
	if err := s.SkipParked(ctxT(t), "billing", p2.Position); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("skip twice: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestStaleCacheOnAnotherNodeStillConflicts(t *testing.T) {
	eng := enginetest.Start(t)
	a := startStore(t, eng, eventstore.Config{})
	b := startStore(t, eng, eventstore.Config{})
	mustAppend(t, a, "doc-1", 0, ev("doc.created", 1))
	mustAppend(t, a, "doc-1", 1, ev("doc.edited", 2))
	mustAppend(t, b, "doc-1", 2, ev("doc.edited", 3)) // a's cache still says version 2
	_, err := a.Append(ctxT(t), "doc-1", 2, ev("doc.edited", 4))
	var ce *eventstore.ConflictError
	if !errors.As(err, &ce) || ce.Current != 3 {
		t.Fatalf("stale cache: %v", err)
	}
	mustAppend(t, b, "doc-1", 3, ev("doc.edited", 5))
	r := mustAppend(t, a, "doc-1", eventstore.AnyVersion, ev("doc.edited", 6))
	if r.Version != 5 {
		t.Fatalf("any version after a stale cache: %+v", r)
	}
	_ = engine.StreamEvents
}
