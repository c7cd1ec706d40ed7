package eventstore_test

import (
	"context"
	"errors"
	"fmt"
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

func appendN(t *testing.T, s *eventstore.Store, n int, typ string) {
	t.Helper()
	for i := range n {
		mustAppend(t, s, fmt.Sprintf("item-%d", i%5), eventstore.AnyVersion, ev(typ, i))
	}
}

func TestSubscriptionCatchUpLiveAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	eng := enginetest.Start(t, dir)
	s := eventstore.New(eng, eventstore.Config{})
	if err := s.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 50, "item.added")
	rec := newRecorder()
	sub, err := s.Subscribe(ctxT(t), "catalog", rec.handle, eventstore.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec.waitLen(t, 50) // caught up
	appendN(t, s, 20, "item.added")
	rec.waitLen(t, 70) // live
	stopSub(t, sub)

	appendN(t, s, 10, "item.added") // while the subscriber is down
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
	appendN(t, s2, 5, "item.added")
	subscribe(t, s2, "catalog", rec.handle, eventstore.SubscribeOptions{})
	rec.waitLen(t, 85)
	appendN(t, s2, 5, "item.added")
	rec.waitLen(t, 90)
	time.Sleep(100 * time.Millisecond) // room for a stray duplicate to show up
	got := rec.positions()
	if len(got) != 90 {
		t.Fatalf("handled %d events, want 90", len(got))
	}
	for i, p := range got {
		if p != uint64(i+1) {
			t.Fatalf("event %d has position %d: gap or duplicate", i, p)
		}
	}
}

func TestSubscriptionFiltersAndFromPosition(t *testing.T) {
	s := startStore(t, nil, eventstore.Config{})
	mustAppend(t, s, "user-1", 0, ev("user.created", 1), ev("user.login", 1))
	mustAppend(t, s, "order-1", 0, ev("order.placed", 1))
	mustAppend(t, s, "user-2", 0, ev("user.created", 2))
	logins, users, late := newRecorder(), newRecorder(), newRecorder()
	subscribe(t, s, "logins", logins.handle, eventstore.SubscribeOptions{Types: []string{"user.login"}})
	subscribe(t, s, "users", users.handle, eventstore.SubscribeOptions{Category: "user"})
	subscribe(t, s, "late", late.handle, eventstore.SubscribeOptions{FromPosition: 3})
	users.waitLen(t, 3)
	logins.waitLen(t, 1)
	late.waitLen(t, 2)
	if got := users.positions(); fmt.Sprint(got) != "[1 2 4]" {
		t.Fatalf("category user: %v", got)
	}
	if got := late.positions(); fmt.Sprint(got) != "[3 4]" {
		t.Fatalf("from position 3: %v", got)
	}
	if got := logins.positions(); fmt.Sprint(got) != "[2]" {
		t.Fatalf("type user.login: %v", got)
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

	mustAppend(t, s, "pay-1", 0, ev("pay.started", "fine"))
	poison := mustAppend(t, s, "pay-1", 1, ev("pay.started", "poison"))
	mustAppend(t, s, "pay-1", 2, ev("pay.done", "fine"), ev("pay.done", "fine too"))
	ok.waitLen(t, 3)
	other.waitLen(t, 4)
	if got := ok.positions(); fmt.Sprint(got) != "[1 3 4]" {
		t.Fatalf("billing handled %v", got)
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
