package registry

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// backend is a real HTTP server whose /health answers 200 or 503.
type backend struct {
	srv     *httptest.Server
	healthy atomic.Bool
	hits    atomic.Int64
	delay   atomic.Int64 // nanoseconds to wait before answering
}

func newBackend(t *testing.T) *backend {
	b := &backend{}
	b.healthy.Store(true)
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			http.NotFound(w, r)
			return
		}
		b.hits.Add(1)
		if d := time.Duration(b.delay.Load()); d > 0 {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		if b.healthy.Load() {
			_, _ = w.Write([]byte(`{"status":"ok"}`))
			return
		}
		http.Error(w, "database down", http.StatusServiceUnavailable)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func fastCheck(url string) *Registration {
	return &Registration{URL: url, TTL: time.Minute,
		Check: &Check{Interval: 100 * time.Millisecond, Timeout: 80 * time.Millisecond}}
}

// startChecker starts a cache and a checker on s; both stop at cleanup.
func startChecker(t *testing.T, s *Store, reg prometheus.Registerer) *Cache {
	t.Helper()
	cache := NewCache(s, CacheConfig{})
	if err := cache.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	ch := NewChecker(s, cache, CheckerConfig{Metrics: reg})
	if err := ch.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := ch.Stop(ctx); err != nil {
			t.Error(err)
		}
		if err := cache.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	return cache
}

func status(t *testing.T, s *Store, svc, id string) *Instance {
	t.Helper()
	inst, err := s.Get(ctxT(t), svc, id)
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

func TestCheckerFallAndRise(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	b := newBackend(t)
	metrics := prometheus.NewRegistry()
	startChecker(t, s, metrics)
	ctx := ctxT(t)
	if _, _, err := s.Register(ctx, "svc", "a", fastCheck(b.srv.URL)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "a passing check", func() bool {
		inst := status(t, s, "svc", "a")
		return inst.LastCheck != nil && inst.CheckPasses >= 1
	})
	inst := status(t, s, "svc", "a")
	if inst.Status != StatusHealthy || inst.CheckOutput != `200 OK: {"status":"ok"}` {
		t.Fatalf("after a pass: %s %q", inst.Status, inst.CheckOutput)
	}
	b.healthy.Store(false)
	// One failure is not enough (fall 2)...
	eventually(t, 15*time.Second, "a failed check", func() bool { return status(t, s, "svc", "a").CheckFailures >= 1 })
	if inst := status(t, s, "svc", "a"); inst.CheckFailures == 1 && inst.Status != StatusHealthy {
		t.Fatalf("one failure flipped the status: %+v", inst)
	}
	// ...two are.
	eventually(t, 15*time.Second, "unhealthy", func() bool { return status(t, s, "svc", "a").Status == StatusUnhealthy })
	inst = status(t, s, "svc", "a")
	if inst.CheckFailures < 2 || inst.CheckOutput != "503 Service Unavailable: database down" {
		t.Fatalf("unhealthy with %d failures, output %q", inst.CheckFailures, inst.CheckOutput)
	}
	b.healthy.Store(true)
	eventually(t, 15*time.Second, "healthy again", func() bool { return status(t, s, "svc", "a").Status == StatusHealthy })
	if inst := status(t, s, "svc", "a"); inst.CheckPasses < 2 {
		t.Fatalf("recovered after %d passes, rise is 2", inst.CheckPasses)
	}
	if n := counterValue(t, metrics, "fail"); n < 2 {
		t.Fatalf("checks_total{result=fail} = %v", n)
	}
}

func counterValue(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "plexus_registry_checks_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no plexus_registry_checks_total{result=%q}", result)
	return 0
}

func TestCheckerTimeoutCountsAsFailure(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	b := newBackend(t)
	// The backend answers healthy, but only after a minute: without the
	// 80ms check timeout no check could fail within the wait below.
	b.delay.Store(int64(time.Minute))
	startChecker(t, s, nil)
	if _, _, err := s.Register(ctxT(t), "svc", "slow", fastCheck(b.srv.URL)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "unhealthy by timeouts", func() bool { return status(t, s, "svc", "slow").Status == StatusUnhealthy })
	if out := status(t, s, "svc", "slow").CheckOutput; out != "timeout after 80ms" {
		t.Fatalf("output %q", out)
	}
}

func TestCheckerKeepsDraining(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	b := newBackend(t)
	b.healthy.Store(false)
	ctx := ctxT(t)
	if _, _, err := s.Register(ctx, "svc", "d", fastCheck(b.srv.URL)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetStatus(ctx, "svc", "d", StatusDraining); err != nil {
		t.Fatal(err)
	}
	startChecker(t, s, nil)
	eventually(t, 15*time.Second, "three failed checks", func() bool { return status(t, s, "svc", "d").CheckFailures >= 3 })
	if st := status(t, s, "svc", "d").Status; st != StatusDraining {
		t.Fatalf("draining instance became %s", st)
	}
	b.healthy.Store(true)
	eventually(t, 15*time.Second, "three passes", func() bool { return status(t, s, "svc", "d").CheckPasses >= 3 })
	if st := status(t, s, "svc", "d").Status; st != StatusDraining {
		t.Fatalf("draining instance became %s", st)
	}
}

// Two checkers on one engine (as on two nodes) keep the state consistent
// and do not double the check rate.
func TestTwoCheckersShareTheWork(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	b := newBackend(t)
	startChecker(t, s, nil)
	startChecker(t, s, nil)
	const iv = 200 * time.Millisecond
	r := fastCheck(b.srv.URL)
	r.Check.Interval = iv
	start := time.Now()
	if _, _, err := s.Register(ctxT(t), "svc", "a", r); err != nil {
		t.Fatal(err)
	}
	// Sharing means about one check per interval of the time that actually
	// passed (a loaded machine only makes fewer); two checkers that did not
	// share would reach 20 checks in about 10 intervals, over the limit.
	eventually(t, 60*time.Second, "20 checks", func() bool { return b.hits.Load() >= 20 })
	hits, elapsed := b.hits.Load(), time.Since(start)
	if limit := int64(1.5*float64(elapsed)/float64(iv)) + 3; hits > limit {
		t.Fatalf("%d checks in %s by two checkers at a %s interval; sharing allows at most %d", hits, elapsed, iv, limit)
	}
	b.healthy.Store(false)
	eventually(t, 15*time.Second, "unhealthy", func() bool { return status(t, s, "svc", "a").Status == StatusUnhealthy })
	b.healthy.Store(true)
	eventually(t, 15*time.Second, "healthy", func() bool { return status(t, s, "svc", "a").Status == StatusHealthy })
	t.Logf("%d checks in %s by two checkers", hits, elapsed)
}

func TestCheckerForgetsRemovedInstances(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	b := newBackend(t)
	startChecker(t, s, nil)
	ctx := ctxT(t)
	if _, _, err := s.Register(ctx, "svc", "gone", fastCheck(b.srv.URL)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "a check", func() bool { return b.hits.Load() > 0 })
	if err := s.Deregister(ctx, "svc", "gone"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	n := b.hits.Load()
	time.Sleep(400 * time.Millisecond)
	if m := b.hits.Load(); m != n {
		t.Fatalf("checks went on after deregistration: %d -> %d", n, m)
	}
}

func TestCheckerTracesChecks(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	got := make(chan string, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case got <- r.Header.Get("traceparent"):
		default:
		}
	}))
	t.Cleanup(srv.Close)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	cache := NewCache(s, CacheConfig{})
	if err := cache.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	ch := NewChecker(s, cache, CheckerConfig{TracerProvider: tp})
	if err := ch.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ch.Stop(context.Background()); _ = cache.Stop(context.Background()) })
	if _, _, err := s.Register(ctxT(t), "svc", "t", fastCheck(srv.URL)); err != nil {
		t.Fatal(err)
	}
	var tp1 string
	select {
	case tp1 = <-got:
	case <-time.After(3 * time.Second):
		t.Fatal("no check")
	}
	eventually(t, 15*time.Second, "a span", func() bool { return len(rec.Ended()) > 0 })
	span := rec.Ended()[0]
	if span.Name() != "registry.check" || !strings.Contains(tp1, span.SpanContext().TraceID().String()) {
		t.Fatalf("span %q, traceparent %q", span.Name(), tp1)
	}
}

// When the checker doing an instance's checks stops (its node went away),
// another one takes over.
func TestCheckerTakeover(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	b := newBackend(t)
	cache := NewCache(s, CacheConfig{})
	if err := cache.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	stopCache(t, cache)
	first := NewChecker(s, cache, CheckerConfig{})
	if err := first.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Register(ctxT(t), "svc", "a", fastCheck(b.srv.URL)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "checks by the first checker", func() bool { return b.hits.Load() >= 3 })
	startChecker(t, s, nil)
	if err := first.Stop(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	n := b.hits.Load()
	eventually(t, 15*time.Second, "checks by the second checker", func() bool { return b.hits.Load() >= n+3 })
}
