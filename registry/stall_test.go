package registry

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/internal/clustertest"
	"github.com/plexushq/plexus/internal/enginetest"
)

// fastChecks makes watches check their freshness often, so the tests
// below find stalls in a fraction of the time they would allow.
var fastChecks = StoreConfig{WatchCheck: 50 * time.Millisecond, WatchStallAfter: 300 * time.Millisecond}

func openStore(t *testing.T, eng *engine.Engine, cfg StoreConfig) *Store {
	t.Helper()
	s, err := OpenStore(ctxT(t), eng, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func startCache(t *testing.T, s *Store) *Cache {
	t.Helper()
	c := NewCache(s, CacheConfig{})
	if err := c.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	stopCache(t, c)
	return c
}

// deleteWatchConsumers removes the engine side of every watch on the
// registry bucket, as the loss of the server that held them does: the
// subscriptions stay open but nothing arrives on them any more.
func deleteWatchConsumers(t *testing.T, eng *engine.Engine) int {
	t.Helper()
	ctx := ctxT(t)
	s, err := eng.JetStream().Stream(ctx, "KV_"+engine.BucketRegistry)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for name := range s.ConsumerNames(ctx).Name() {
		if err := s.DeleteConsumer(ctx, name); err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

// TestCacheResyncsAStalledWatch: a watch whose engine side is gone
// delivers nothing and reports no error. The cache notices that the
// bucket moved on without it and starts over at once, instead of serving
// a stale view until the client library's own heartbeat check (10s) or
// forever.
func TestCacheResyncsAStalledWatch(t *testing.T) {
	eng := enginetest.Start(t)
	s := openStore(t, eng, fastChecks)
	c := startCache(t, s)
	if n := deleteWatchConsumers(t, eng); n != 1 {
		t.Fatalf("%d watch consumers, want 1", n)
	}
	stalledAt := time.Now()
	if _, _, err := s.Register(ctxT(t), "svc", "late", reg("http://127.0.0.1:9")); err != nil {
		t.Fatal(err)
	}
	// The client library would resume after two missed 5s heartbeats.
	eventually(t, 5*time.Second, "the cache to see a registration made after its watch stalled", func() bool {
		return c.Service("svc") != nil
	})
	if got := c.feed.stalls.Load(); got < 1 {
		t.Fatalf("stalls counted: %d, want at least 1", got)
	}
	t.Logf("seen %s after the stall", time.Since(stalledAt).Round(time.Millisecond))
	// The new feed proves itself current again.
	eventually(t, 5*time.Second, "the view to be proved fresh after the resync", func() bool {
		return c.FreshAt().After(stalledAt)
	})
}

// TestViewAgesWhileTheEngineIsGone: the view's age is the time since the
// feed last proved itself complete. It keeps small while the engine
// answers, grows while the engine is unreachable (the view may be missing
// changes, though nothing reports an error) and drops once the feed
// catches up again.
func TestViewAgesWhileTheEngineIsGone(t *testing.T) {
	cl := clustertest.Start(t, clustertest.Options{Size: 1})
	eng := enginetest.StartConfig(t, engine.Config{URLs: cl.URLs(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	s := openStore(t, eng, fastChecks)
	c := startCache(t, s)
	before := c.FreshAt()
	eventually(t, 5*time.Second, "a revision check to prove the view fresh", func() bool {
		return c.FreshAt().After(before)
	})
	cl.Kill(0)
	lost := c.FreshAt()
	time.Sleep(500 * time.Millisecond) // ten checks' worth without an answer
	if got := c.FreshAt(); got.After(lost.Add(100 * time.Millisecond)) {
		t.Fatalf("view proved fresh at %s while the engine was down (last proof %s)", got, lost)
	}
	if age := c.ViewAge(); age < 400*time.Millisecond {
		t.Fatalf("view age %s after 500ms without the engine", age)
	}
	cl.Restart(0)
	eventually(t, 30*time.Second, "the view to be fresh again", func() bool {
		return c.FreshAt().After(lost.Add(500 * time.Millisecond))
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := s.Register(ctx, "svc", "after", reg("http://127.0.0.1:9")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the registration to reach the cache", func() bool { return c.Service("svc") != nil })
}
