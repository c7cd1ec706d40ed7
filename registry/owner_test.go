package registry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/internal/clustertest"
	"github.com/plexushq/plexus/internal/enginetest"
)

// probeLog records which checker probed which instance.
type probeLog struct {
	mu  sync.Mutex
	by  map[string]map[string]int // instance path -> checker -> probes
	all int
}

func (l *probeLog) add(checker, path string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.by == nil {
		l.by = map[string]map[string]int{}
	}
	if l.by[path] == nil {
		l.by[path] = map[string]int{}
	}
	l.by[path][checker]++
	l.all++
}

// snapshot copies the counts.
func (l *probeLog) snapshot() map[string]map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]map[string]int{}
	for p, m := range l.by {
		out[p] = map[string]int{}
		for c, n := range m {
			out[p][c] = n
		}
	}
	return out
}

// loggingTransport tells the log which checker sent each probe.
type loggingTransport struct {
	name string
	log  *probeLog
}

func (t loggingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.log.add(t.name, r.URL.Path)
	return http.DefaultTransport.RoundTrip(r)
}

// startNamedChecker runs a cache and a checker whose probes are logged
// under name, as the checker of one node.
func startNamedChecker(t *testing.T, s *Store, name string, log *probeLog, writable func() (time.Time, bool)) {
	t.Helper()
	cache := NewCache(s, CacheConfig{})
	if err := cache.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	ch := NewChecker(s, cache, CheckerConfig{Transport: loggingTransport{name: name, log: log}, Writable: writable})
	if err := ch.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ch.Stop(ctx)
		_ = cache.Stop(ctx)
	})
}

// connectedSince tracks the engine connection as a stand-in for the
// engine's write health (a node passes that).
func connectedSince(t *testing.T, eng *engine.Engine) func() (time.Time, bool) {
	var since atomic.Int64
	var up atomic.Bool
	since.Store(time.Now().UnixNano())
	up.Store(true)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			c := eng.Conn().IsConnected()
			if c && !up.Load() {
				since.Store(time.Now().UnixNano())
			}
			up.Store(c)
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return func() (time.Time, bool) { return time.Unix(0, since.Load()), up.Load() }
}

// anyPath answers 200 on every path, so each instance has a path of its own.
func anyPath(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	return srv
}

func registerMany(t *testing.T, s *Store, url string, n int, interval time.Duration) []string {
	t.Helper()
	var paths []string
	for i := range n {
		p := fmt.Sprintf("/health/%d", i)
		r := &Registration{URL: url, TTL: 5 * time.Minute,
			Check: &Check{Path: p, Interval: interval, Timeout: interval}}
		if _, _, err := s.Register(ctxT(t), "svc", fmt.Sprintf("i%d", i), r); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// checkersOf lists the checkers that probed path, with their counts.
func owners(t *testing.T, counts map[string]map[string]int, path string) map[string]int {
	t.Helper()
	return counts[path]
}

// TestOneCheckerPerInstance: three nodes' checkers on one registry. Each
// new instance is checked by exactly one of them, from its first check
// on; the instances are spread over the checkers.
func TestOneCheckerPerInstance(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	log := &probeLog{}
	for _, name := range []string{"a", "b", "c"} {
		startNamedChecker(t, s, name, log, nil)
	}
	srv := anyPath(t)
	paths := registerMany(t, s, srv.URL, 12, 100*time.Millisecond)
	eventually(t, 10*time.Second, "three checks of every instance", func() bool {
		c := log.snapshot()
		for _, p := range paths {
			n := 0
			for _, k := range c[p] {
				n += k
			}
			if n < 3 {
				return false
			}
		}
		return true
	})
	counts := log.snapshot()
	used := map[string]bool{}
	for _, p := range paths {
		o := owners(t, counts, p)
		if len(o) != 1 {
			t.Errorf("instance %s checked by %d checkers: %v", p, len(o), o)
		}
		for c := range o {
			used[c] = true
		}
	}
	if len(used) < 2 {
		t.Errorf("12 instances all checked by %v", used)
	}
}

// TestNoRecheckStormWhileTheEngineIsDown: while the engine cannot store
// check results (failover, outage), only each instance's own checker goes
// on probing it; the others do not start checking it because its results
// stopped arriving.
func TestNoRecheckStormWhileTheEngineIsDown(t *testing.T) {
	t.Parallel()
	cl := clustertest.Start(t, clustertest.Options{Size: 1})
	eng := enginetest.StartConfig(t, engine.Config{URLs: cl.URLs(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	s := openStore(t, eng, StoreConfig{})
	log := &probeLog{}
	writable := connectedSince(t, eng)
	for _, name := range []string{"a", "b", "c"} {
		startNamedChecker(t, s, name, log, writable)
	}
	srv := anyPath(t)
	paths := registerMany(t, s, srv.URL, 6, 100*time.Millisecond)
	eventually(t, 10*time.Second, "checks of every instance", func() bool {
		c := log.snapshot()
		for _, p := range paths {
			if len(c[p]) == 0 {
				return false
			}
		}
		return true
	})
	before := log.snapshot()
	cl.Kill(0)
	// Ten intervals and more than the takeover grace (1s) without the engine.
	time.Sleep(1500 * time.Millisecond)
	after := log.snapshot()
	for _, p := range paths {
		if during := probers(before, after, p); len(during) > 1 {
			t.Errorf("instance %s probed by %v while the engine was down", p, during)
		}
	}
	// Back to normal: every instance's results are stored again, and still
	// one checker probes each.
	cl.Restart(0)
	eventually(t, 30*time.Second, "checks stored again", func() bool {
		for i := range paths {
			inst, err := s.Get(ctxT(t), "svc", fmt.Sprintf("i%d", i))
			if err != nil || inst.LastCheck == nil || time.Since(*inst.LastCheck) > time.Second {
				return false
			}
		}
		return true
	})
	mark := log.snapshot()
	time.Sleep(time.Second)
	end := log.snapshot()
	for _, p := range paths {
		if by := probers(mark, end, p); len(by) > 1 {
			t.Errorf("instance %s probed by %v after the engine came back", p, by)
		}
	}
}

// probers are the checkers that probed path between two snapshots.
func probers(before, after map[string]map[string]int, path string) []string {
	var out []string
	for c, n := range after[path] {
		if n > before[path][c] {
			out = append(out, c)
		}
	}
	return out
}
