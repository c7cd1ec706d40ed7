package registry

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// waitChange waits for the cache's next change after ch.
func waitChange(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("cache did not change")
	}
}

// waitFor waits until cond holds for the cache, re-checking on changes.
func waitFor(t *testing.T, c *Cache, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		ch := c.Changed()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("cache: timed out waiting for %s", what)
		}
	}
}

func stopCache(t *testing.T, c *Cache) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
}

// exerciseCache runs the same script against a cache of either feed.
func exerciseCache(t *testing.T, s *Store, c *Cache) {
	ctx := ctxT(t)
	if got := c.Service("svc"); got == nil || len(got.Instances) != 1 {
		t.Fatalf("first snapshot not loaded by Start: %+v", got)
	}
	gen0 := c.Service("svc").Gen
	ch := c.Changed()
	if _, _, err := s.Register(ctx, "svc", "b", reg("http://127.0.0.1:2")); err != nil {
		t.Fatal(err)
	}
	waitChange(t, ch)
	waitFor(t, c, "b", func() bool { return len(c.Service("svc").Instances) == 2 })
	snap := c.Service("svc")
	if snap.Gen == gen0 || len(snap.Healthy) != 2 || snap.Instances[0].ID != "a" || snap.Instances[1].ID != "b" {
		t.Fatalf("after put: %+v", snap)
	}
	// A heartbeat changes nothing routing depends on: same Gen.
	if _, err := s.Heartbeat(ctx, "svc", "b"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "heartbeat", func() bool {
		return c.Service("svc").Instances[1].LastHeartbeat.After(snap.Instances[1].LastHeartbeat)
	})
	if g := c.Service("svc").Gen; g != snap.Gen {
		t.Fatalf("heartbeat changed Gen %d -> %d", snap.Gen, g)
	}
	if _, err := s.SetStatus(ctx, "svc", "a", StatusDraining); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "draining", func() bool { return len(c.Service("svc").Healthy) == 1 })
	if g := c.Service("svc").Gen; g == snap.Gen || c.Service("svc").Healthy[0].ID != "b" {
		t.Fatalf("drain: Gen %d (was %d), healthy %+v", g, snap.Gen, c.Service("svc").Healthy)
	}
	if _, _, err := s.Register(ctx, "other", "x", reg("http://127.0.0.1:3")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "other", func() bool { return c.Service("other") != nil })
	if names := c.Services(); len(names) != 2 || names[0].Name != "other" || names[1].Name != "svc" {
		t.Fatalf("services %+v", names)
	}
	for _, id := range []string{"a", "b"} {
		if err := s.Deregister(ctx, "svc", id); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, c, "svc gone", func() bool { return c.Service("svc") == nil })
	if len(c.Services()) != 1 {
		t.Fatalf("services %+v", c.Services())
	}
}

func TestKVCache(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	if _, _, err := s.Register(ctxT(t), "svc", "a", reg("http://127.0.0.1:1")); err != nil {
		t.Fatal(err)
	}
	metrics := prometheus.NewRegistry()
	c := NewCache(s, CacheConfig{Metrics: metrics})
	if err := c.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	stopCache(t, c)
	mfs, err := metrics.Gather()
	byName := map[string]int{}
	for _, mf := range mfs {
		byName[mf.GetName()] = len(mf.GetMetric())
	}
	if err != nil || byName["plexus_registry_instances"] != 3 || byName["plexus_registry_cache_connected"] != 1 {
		t.Fatalf("metrics %v %v", mfs, err)
	}
	exerciseCache(t, s, c)
}

func TestHTTPCache(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	if _, _, err := e.store.Register(ctxT(t), "svc", "a", reg("http://127.0.0.1:1")); err != nil {
		t.Fatal(err)
	}
	cl, err := NewClient(e.srv.URL, "", ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	c := NewHTTPCache(cl, CacheConfig{MaxBackoff: 200 * time.Millisecond})
	if err := c.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	stopCache(t, c)
	exerciseCache(t, e.store, c)
}

// The HTTP-fed cache reconnects after the stream breaks and drops what was
// removed meanwhile.
func TestHTTPCacheReconnects(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	api := NewAPI(s, APIConfig{})
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	ctx := ctxT(t)
	_, _, _ = s.Register(ctx, "svc", "a", reg("http://127.0.0.1:1"))
	_, _, _ = s.Register(ctx, "svc", "b", reg("http://127.0.0.1:2"))
	cl, _ := NewClient(srv.URL, "", ClientConfig{})
	t.Cleanup(cl.Close)
	c := NewHTTPCache(cl, CacheConfig{MaxBackoff: 200 * time.Millisecond})
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stopCache(t, c)
	if len(c.Service("svc").Instances) != 2 {
		t.Fatalf("%+v", c.Service("svc"))
	}
	// Break the stream and change the registry while it is down; the
	// removal of b happens while no stream is open.
	srv.Config.SetKeepAlivesEnabled(false)
	srv.CloseClientConnections()
	_ = s.Deregister(ctx, "svc", "b")
	_, _, _ = s.Register(ctx, "svc", "c", reg("http://127.0.0.1:3"))
	waitFor(t, c, "resync", func() bool {
		snap := c.Service("svc")
		return snap != nil && len(snap.Instances) == 2 && snap.Instances[0].ID == "a" && snap.Instances[1].ID == "c"
	})
}

func TestCacheStartGivesUpWithContext(t *testing.T) {
	t.Parallel()
	cl, _ := NewClient("http://127.0.0.1:1", "", ClientConfig{})
	t.Cleanup(cl.Close)
	c := NewHTTPCache(cl, CacheConfig{MaxBackoff: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := c.Start(ctx); err == nil {
		t.Fatal("Start succeeded without a registry")
	}
	if c.Service("x") != nil || len(c.Services()) != 0 {
		t.Fatal("empty cache answers something")
	}
}

// A removal the feed never delivered (here: the value purged from the
// stream without a marker) is dropped at the next resync, and resyncs keep
// Gen when nothing changed.
func TestCacheResyncDropsUndeliveredRemovals(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := ctxT(t)
	for _, id := range []string{"a", "b"} {
		if _, _, err := s.Register(ctx, "svc", id, reg("http://127.0.0.1:1")); err != nil {
			t.Fatal(err)
		}
	}
	c := NewCache(s, CacheConfig{Resync: 150 * time.Millisecond})
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stopCache(t, c)
	gen := c.Service("svc").Gen
	time.Sleep(400 * time.Millisecond) // two resyncs or more
	if g := c.Service("svc").Gen; g != gen {
		t.Fatalf("resync without changes moved Gen %d -> %d", gen, g)
	}
	st, err := s.js.Stream(ctx, "KV_plexus_registry")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSubject("$KV.plexus_registry.svc.b")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "b dropped by a resync", func() bool { return len(c.Service("svc").Instances) == 1 })
}
