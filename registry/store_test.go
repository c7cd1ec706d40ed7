package registry

import (
	"errors"
	"sync"
	"testing"
	"time"
)

func TestLeaseExpiryShowsInWatch(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := ctxT(t)
	w, initial, err := s.Watch(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if len(initial) != 0 {
		t.Fatalf("initial %v", initial)
	}
	r := reg("http://127.0.0.1:1")
	r.TTL = time.Second
	start := time.Now()
	if _, created, err := s.Register(ctx, "svc", "a", r); err != nil || !created {
		t.Fatalf("register: %v %v", created, err)
	}
	ev, err := w.Next(ctx)
	if err != nil || ev.Type != EventPut || ev.ID != "a" || ev.Instance.Status != StatusHealthy {
		t.Fatalf("first event %+v %v", ev, err)
	}
	ev, err = w.Next(ctx)
	took := time.Since(start)
	if err != nil || ev.Type != EventDelete || ev.Service != "svc" || ev.ID != "a" {
		t.Fatalf("second event %+v %v", ev, err)
	}
	// Not before the lease ends; how long after is the engine's business
	// (the wait is bounded by ctx).
	if took < time.Second {
		t.Fatalf("expired after %s, before its 1s lease", took)
	}
	t.Logf("lease of 1s ended after %s", took)
	if _, err := s.Heartbeat(ctx, "svc", "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("heartbeat after expiry: %v", err)
	}
}

func TestHeartbeatKeepsInstanceAlive(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := ctxT(t)
	// A 3s lease renewed every 200ms outlives its TTL (12 heartbeats,
	// 2.4s and more); the slack between heartbeats (2.8s) is generous so
	// that a loaded machine does not end the lease between two of them.
	r := reg("http://127.0.0.1:1")
	r.TTL = 3 * time.Second
	first, _, err := s.Register(ctx, "svc", "a", r)
	if err != nil {
		t.Fatal(err)
	}
	last := first.ExpiresAt
	for range 12 {
		time.Sleep(200 * time.Millisecond)
		inst, err := s.Heartbeat(ctx, "svc", "a")
		if err != nil {
			t.Fatalf("heartbeat: %v", err)
		}
		if !inst.ExpiresAt.Equal(inst.LastHeartbeat.Add(3*time.Second)) || !inst.ExpiresAt.After(last) {
			t.Fatalf("expiresAt %s after a heartbeat at %s (previous %s)", inst.ExpiresAt, inst.LastHeartbeat, last)
		}
		last = inst.ExpiresAt
	}
	if !last.After(first.ExpiresAt) || time.Since(first.RegisteredAt) < 2*time.Second {
		t.Fatalf("heartbeats did not outlive the first lease")
	}
	list, err := s.List(ctx, "svc")
	if err != nil || len(list) != 1 {
		t.Fatalf("list %v %v", list, err)
	}
}

func TestConcurrentWritersDoNotClobber(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := ctxT(t)
	if _, _, err := s.Register(ctx, "svc", "a", reg("http://127.0.0.1:1")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	const n = 20
	errs := make(chan error, 3*n)
	for i := range n {
		wg.Add(3)
		go func() {
			defer wg.Done()
			_, err := s.Heartbeat(ctx, "svc", "a")
			errs <- err
		}()
		go func() {
			defer wg.Done()
			_, _, err := s.RecordCheck(ctx, "svc", "a", CheckResult{Started: time.Now(), OK: false, Output: "x"})
			if errors.Is(err, ErrStaleCheck) {
				err = nil // another goroutine's later check won
			}
			errs <- err
		}()
		go func() {
			defer wg.Done()
			st := StatusDraining
			if i%2 == 1 {
				st = StatusHealthy
			}
			_, err := s.SetStatus(ctx, "svc", "a", st)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent update: %v", err)
		}
	}
	inst, err := s.Get(ctx, "svc", "a")
	if err != nil {
		t.Fatal(err)
	}
	if inst.URL != "http://127.0.0.1:1" || inst.LastCheck == nil || inst.Weight != 1 {
		t.Fatalf("instance lost fields: %+v", inst)
	}
}
