package registry

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func newClient(t *testing.T, e *apiEnv) *Client {
	t.Helper()
	cl, err := NewClient(e.srv.URL, "", ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func TestClientCalls(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	cl := newClient(t, e)
	ctx := ctxT(t)
	w := 3
	inst, created, err := cl.Register(ctx, "svc", "a", Registration{URL: "http://127.0.0.1:1", Weight: &w})
	if err != nil || !created || inst.Weight != 3 {
		t.Fatalf("register %+v %v %v", inst, created, err)
	}
	if _, created, _ = cl.Register(ctx, "svc", "a", Registration{URL: "http://127.0.0.1:1"}); created {
		t.Fatal("replacement reported as new")
	}
	before := time.Now()
	exp, err := cl.Heartbeat(ctx, "svc", "a")
	if err != nil || exp.Before(before.Add(30*time.Second)) { // renewed for the default 30s from the heartbeat on
		t.Fatalf("heartbeat %v %v", exp, err)
	}
	if inst, err = cl.SetStatus(ctx, "svc", "a", StatusDraining); err != nil || inst.Status != StatusDraining {
		t.Fatalf("status %+v %v", inst, err)
	}
	sums, err := cl.List(ctx)
	if err != nil || len(sums) != 1 || sums[0].Draining != 1 {
		t.Fatalf("list %+v %v", sums, err)
	}
	info, err := cl.Get(ctx, "svc")
	if err != nil || len(info.Instances) != 1 {
		t.Fatalf("get %+v %v", info, err)
	}
	if err := cl.Deregister(ctx, "svc", "a"); err != nil {
		t.Fatal(err)
	}
	if err := cl.Deregister(ctx, "svc", "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second deregister: %v", err)
	}
	if _, err := cl.Heartbeat(ctx, "svc", "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("heartbeat unknown: %v", err)
	}
	if _, _, err := cl.Register(ctx, "svc", "a", Registration{URL: "nope"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad url: %v", err)
	}
	if _, _, err := cl.Register(ctx, "svc", "a.b", Registration{URL: "http://h:1"}); !errors.Is(err, ErrBadName) {
		t.Fatalf("bad id: %v", err)
	}
	if _, err := cl.Get(ctx, "svc"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get empty: %v", err)
	}
	ws, err := cl.Watch(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if len(ws.Snapshot()) != 0 {
		t.Fatalf("snapshot %+v", ws.Snapshot())
	}
	_, _, _ = cl.Register(ctx, "svc", "z", Registration{URL: "http://127.0.0.1:9"})
	ev, err := ws.Next(ctx)
	if err != nil || ev.Type != EventPut || ev.ID != "z" || ev.Instance.URL != "http://127.0.0.1:9" {
		t.Fatalf("watch event %+v %v", ev, err)
	}
}

func TestRegistrarLifecycle(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	cl := newClient(t, e)
	ctx := ctxT(t)
	r, err := cl.NewRegistrar("svc", "me", Registration{URL: "http://127.0.0.1:1", TTL: time.Second}, RegistrarConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer r.Stop(ctx)
	// Heartbeats keep it past its 1s lease.
	time.Sleep(1500 * time.Millisecond)
	if _, err := e.store.Get(ctx, "svc", "me"); err != nil {
		t.Fatalf("lease not renewed: %v", err)
	}
	// Removed behind its back (as after a partition), it registers again
	// and keeps the status it was given.
	if err := r.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Deregister(ctx, "svc", "me"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "re-registration", func() bool {
		inst, err := e.store.Get(ctx, "svc", "me")
		return err == nil && inst.Status == StatusDraining
	})
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Get(ctx, "svc", "me"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("still registered after Stop: %v", err)
	}
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

func TestRegistrarRejectsBadRegistration(t *testing.T) {
	t.Parallel()
	cl, _ := NewClient("http://127.0.0.1:1", "", ClientConfig{})
	defer cl.Close()
	if _, err := cl.NewRegistrar("svc", "x", Registration{URL: "ftp://x"}, RegistrarConfig{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad registration accepted: %v", err)
	}
	if _, err := NewClient("ftp://localhost:3100", "", ClientConfig{}); err == nil {
		t.Fatal("admin URL with another scheme accepted")
	}
	if c, err := NewClient("localhost:3100", "", ClientConfig{}); err != nil {
		t.Fatalf("host:port (as the CLI takes it) refused: %v", err)
	} else {
		c.Close()
	}
}

func TestRestartKeepsUnexpiredRegistrations(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, eng := newStoreEngine(t, dir)
	ctx := ctxT(t)
	short := reg("http://127.0.0.1:1")
	short.TTL = time.Second
	if _, _, err := s.Register(ctx, "svc", "long", reg("http://127.0.0.1:2")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Register(ctx, "svc", "short", short); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetStatus(ctx, "svc", "long", StatusDraining); err != nil {
		t.Fatal(err)
	}
	if err := eng.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1200 * time.Millisecond) // the short lease ends while the engine is down
	s2 := newStore(t, dir)
	list, err := s2.List(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != "long" || list[0].Status != StatusDraining || list[0].URL != "http://127.0.0.1:2" {
		t.Fatalf("after restart: %+v", list)
	}
	// The engine itself drops the expired value, not only our reads.
	eventually(t, 15*time.Second, "engine removes the expired key", func() bool {
		_, err := s2.kv.Get(ctx, "svc.short")
		return errors.Is(err, jetstream.ErrKeyNotFound)
	})
}
