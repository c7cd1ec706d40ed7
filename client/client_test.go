package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/plexushq/plexus/balance"
	"github.com/plexushq/plexus/breaker"
	"github.com/plexushq/plexus/internal/httpx"
	"github.com/plexushq/plexus/registry"
	"github.com/plexushq/plexus/telemetry"
)

// staticDisc is a fixed discovery; the real registry.Cache is used in the
// service package's tests.
type staticDisc map[string]*registry.ServiceSnapshot

func (d staticDisc) Service(name string) *registry.ServiceSnapshot { return d[name] }

// backend is one loopback instance that counts its hits.
type backend struct {
	inst *registry.Instance
	hits atomic.Int64
	srv  *httptest.Server
}

func newBackend(t *testing.T, id string, h http.HandlerFunc) *backend {
	t.Helper()
	b := &backend{}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(b.srv.Close)
	b.inst = &registry.Instance{ID: id, Service: "svc", URL: b.srv.URL, Weight: 1, Status: registry.StatusHealthy}
	return b
}

func snapshot(bs ...*backend) staticDisc {
	s := &registry.ServiceSnapshot{Name: "svc", Gen: 1}
	for _, b := range bs {
		s.Instances = append(s.Instances, b.inst)
		s.Healthy = append(s.Healthy, b.inst)
	}
	return staticDisc{"svc": s}
}

func status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(code)
		fmt.Fprintf(w, "status %d", code)
	}
}

// noBreaker keeps breakers out of tests about retries.
var noBreaker = breaker.Config{FailureThreshold: -1, FailureRatio: -1}

func newClient(t *testing.T, d Discovery, cfg Config) *Client {
	t.Helper()
	c, err := New(d, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func TestRetryGoesToAnotherInstance(t *testing.T) {
	t.Parallel()
	bad := newBackend(t, "bad", status(503))
	good := newBackend(t, "good", status(200))
	c := newClient(t, snapshot(bad, good), Config{Breaker: noBreaker, Strategy: balance.RoundRobin,
		Retry: RetryPolicy{BaseDelay: time.Millisecond, Budget: 1}})
	for i := range 40 {
		resp, err := c.Call(context.Background(), "svc", "GET", "/x", nil)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if resp.Instance != "good" {
			t.Fatalf("answered by %s", resp.Instance)
		}
	}
	// Round robin sends half the first attempts to bad; each retry went to good.
	if bad.hits.Load() < 10 || bad.hits.Load()+40 != bad.hits.Load()+good.hits.Load() || good.hits.Load() != 40 {
		t.Fatalf("bad %d good %d", bad.hits.Load(), good.hits.Load())
	}
}

func TestRetryBudgetUnderTotalOutage(t *testing.T) {
	t.Parallel()
	bs := []*backend{newBackend(t, "a", status(503)), newBackend(t, "b", status(502)), newBackend(t, "c", status(504))}
	c := newClient(t, snapshot(bs...), Config{Breaker: noBreaker,
		Retry: RetryPolicy{MaxAttempts: 5, BaseDelay: 100 * time.Microsecond, MaxDelay: time.Millisecond}})
	const calls = 300
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range calls / 4 {
				_, err := c.Call(context.Background(), "svc", "GET", "/", nil)
				var se *StatusError
				if !errors.As(err, &se) || se.StatusCode < 502 {
					t.Errorf("want a 5xx StatusError, got %v", err)
				}
			}
		})
	}
	wg.Wait()
	var hits int64
	for _, b := range bs {
		hits += b.hits.Load()
	}
	// Budget: 20% of calls plus 1/s over a 10s window (the test runs well within it).
	limit := int64(calls + calls/5 + 10)
	if hits > limit || hits <= calls {
		t.Fatalf("%d backend hits for %d calls; budget allows at most %d extra, and some retries were expected", hits, calls, limit-calls)
	}
	t.Logf("%d calls, %d backend hits under total outage (without a budget: %d)", calls, hits, calls*5)
}

func TestPostNotRetriedUnlessMarked(t *testing.T) {
	t.Parallel()
	a, b := newBackend(t, "a", status(503)), newBackend(t, "b", status(503))
	c := newClient(t, snapshot(a, b), Config{Breaker: noBreaker, Retry: RetryPolicy{BaseDelay: time.Millisecond, Budget: 1}})
	_, err := c.Call(context.Background(), "svc", "POST", "/orders", []byte(`{}`))
	if err == nil || a.hits.Load()+b.hits.Load() != 1 {
		t.Fatalf("POST: err %v, hits %d", err, a.hits.Load()+b.hits.Load())
	}
	_, err = c.Call(context.Background(), "svc", "POST", "/orders", []byte(`{}`), Idempotent())
	if err == nil || a.hits.Load()+b.hits.Load() != 4 {
		t.Fatalf("idempotent POST: err %v, hits %d, want 1+3", err, a.hits.Load()+b.hits.Load())
	}

	// A connection dropped after the request was read: the POST may have run.
	var resets atomic.Int64
	drop := newBackend(t, "drop", func(w http.ResponseWriter, r *http.Request) {
		resets.Add(1)
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	})
	c2 := newClient(t, snapshot(drop, newBackend(t, "ok", status(200))), Config{Breaker: noBreaker, Strategy: balance.RoundRobin,
		Retry: RetryPolicy{BaseDelay: time.Millisecond, Budget: 1}})
	var failed int
	for range 10 {
		if _, err := c2.Call(context.Background(), "svc", "POST", "/", []byte("x")); err != nil {
			failed++
		}
	}
	if failed == 0 || int64(failed) != resets.Load() {
		t.Fatalf("POST after dropped connection: %d failed, %d drops (a retry would hide drops)", failed, resets.Load())
	}
}

func TestPostRetriedWhenNeverSent(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := &backend{inst: &registry.Instance{ID: "dead", URL: "http://" + ln.Addr().String(), Weight: 1}}
	ln.Close() // connection refused: nothing was sent
	ok := newBackend(t, "ok", status(201))
	c := newClient(t, snapshot(dead, ok), Config{Breaker: noBreaker, Strategy: balance.RoundRobin,
		Retry: RetryPolicy{BaseDelay: time.Millisecond, Budget: 1}})
	for range 6 {
		if _, err := c.Call(context.Background(), "svc", "POST", "/", []byte("x")); err != nil {
			t.Fatalf("POST to a refused instance was not retried elsewhere: %v", err)
		}
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	var first, second time.Time
	b := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			first = time.Now()
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		second = time.Now()
		w.WriteHeader(200)
	})
	c := newClient(t, snapshot(b), Config{Breaker: noBreaker, Retry: RetryPolicy{BaseDelay: time.Millisecond, Budget: 1}})
	if _, err := c.Call(context.Background(), "svc", "GET", "/", nil); err != nil {
		t.Fatal(err)
	}
	if gap := second.Sub(first); gap < time.Second {
		t.Fatalf("retried %v after a 429 with Retry-After: 1", gap)
	}

	long := newBackend(t, "long", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "120")
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	c2 := newClient(t, snapshot(long), Config{Breaker: noBreaker, Retry: RetryPolicy{Budget: 1}})
	// A client that waited the 120s would end at the caller's deadline
	// instead of answering the 503 itself.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := c2.Call(ctx, "svc", "GET", "/", nil)
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != 503 || long.hits.Load() != 1 || ctx.Err() != nil {
		t.Fatalf("Retry-After beyond MaxRetryAfter: err %v hits %d (caller's context: %v)", err, long.hits.Load(), ctx.Err())
	}
}

func TestBreakerIsolatesBadInstance(t *testing.T) {
	t.Parallel()
	bad := newBackend(t, "bad", status(500))
	g1, g2 := newBackend(t, "g1", status(200)), newBackend(t, "g2", status(200))
	c := newClient(t, snapshot(bad, g1, g2), Config{Strategy: balance.RoundRobin,
		Breaker: breaker.Config{FailureThreshold: 3, FailureRatio: -1}})
	var failed int
	for range 300 {
		if _, err := c.Call(context.Background(), "svc", "GET", "/", nil); err != nil {
			failed++
		}
	}
	if bad.hits.Load() != 3 || failed != 3 || g1.hits.Load()+g2.hits.Load() != 297 {
		t.Fatalf("bad instance got %d hits, %d calls failed; good %d", bad.hits.Load(), failed, g1.hits.Load()+g2.hits.Load())
	}
	states := map[string]string{}
	for _, in := range c.Breakers() {
		states[in.Name] = in.State.String()
	}
	if states["svc/bad"] != "open" || states["svc/g1"] != "closed" || states["svc/g2"] != "closed" {
		t.Fatalf("breakers %v", states)
	}

	// Every instance open: fail fast with a typed error and no traffic.
	c2 := newClient(t, snapshot(bad), Config{Breaker: breaker.Config{FailureThreshold: 1, FailureRatio: -1}})
	_, _ = c2.Call(context.Background(), "svc", "GET", "/", nil)
	before := bad.hits.Load()
	_, err := c2.Call(context.Background(), "svc", "GET", "/", nil)
	if !errors.Is(err, ErrAllOpen) || !errors.Is(err, breaker.ErrOpen) || bad.hits.Load() != before {
		t.Fatalf("all open: %v", err)
	}
}

func TestProblemAndStatusErrors(t *testing.T) {
	t.Parallel()
	b := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/conflict" {
			httpx.WriteProblem(w, httpx.NewProblem(409, "conflict", "version moved").With("currentVersion", 7))
			return
		}
		http.Error(w, "no such user", 404)
	})
	c := newClient(t, snapshot(b), Config{})
	err := c.PostJSON(context.Background(), "svc", "/conflict", map[string]int{"a": 1}, nil)
	var pe *ProblemError
	if !errors.As(err, &pe) || pe.Problem.Status != 409 || pe.Detail != "version moved" || pe.Extra["currentVersion"] != float64(7) {
		t.Fatalf("problem: %#v", err)
	}
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != 409 {
		t.Fatalf("ProblemError must unwrap to StatusError: %v", err)
	}
	err = c.GetJSON(context.Background(), "svc", "/users/1", nil)
	if !errors.As(err, &se) || se.StatusCode != 404 || !strings.Contains(err.Error(), "HTTP 404: no such user") || errors.As(err, &pe) {
		t.Fatalf("status error: %v", err)
	}
	if b.hits.Load() != 2 {
		t.Fatalf("4xx must not be retried: %d hits", b.hits.Load())
	}
	if _, err := c.Call(context.Background(), "nope", "GET", "/", nil); !errors.Is(err, ErrNoInstances) {
		t.Fatalf("unknown service: %v", err)
	}
}

func TestJSONRoundTripAndTimeout(t *testing.T) {
	t.Parallel()
	b := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select { // answers after 30s: only the client's timeout ends the call before
			case <-r.Context().Done():
			case <-time.After(30 * time.Second):
				w.WriteHeader(200)
			}
			return
		}
		var in map[string]string
		if p := httpx.DecodeJSON(w, r, &in, 1<<10); p != nil {
			httpx.WriteProblem(w, p)
			return
		}
		httpx.WriteJSON(w, 201, map[string]string{"echo": in["name"], "ctype": r.Header.Get("Content-Type")})
	})
	c := newClient(t, snapshot(b), Config{Timeout: 200 * time.Millisecond})
	var out map[string]string
	if err := c.PutJSON(context.Background(), "svc", "/users/1", map[string]string{"name": "ann"}, &out); err != nil || out["echo"] != "ann" {
		t.Fatalf("PutJSON: %v %v", err, out)
	}
	// The caller sets no deadline, so the client's 200ms Timeout applies;
	// without it the call would succeed when /slow answers after 30s.
	_, err := c.Call(context.Background(), "svc", "GET", "/slow", nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("default timeout: %v", err)
	}
}

func TestTraceContextInjected(t *testing.T) {
	t.Parallel()
	var got atomic.Value
	b := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) { got.Store(r.Header.Get("traceparent")) })
	store := telemetry.NewStore(telemetry.StoreConfig{})
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(store.Processor()))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	c := newClient(t, snapshot(b), Config{TracerProvider: tp})
	ctx, parent := tp.Tracer("test").Start(context.Background(), "handler")
	if _, err := c.Call(ctx, "svc", "GET", "/", nil); err != nil {
		t.Fatal(err)
	}
	parent.End()
	d, ok := store.Get(parent.SpanContext().TraceID().String())
	if !ok || len(d.Spans) != 2 {
		t.Fatalf("trace %+v", d)
	}
	i := slices.IndexFunc(d.Spans, func(s telemetry.Span) bool { return s.Kind == "client" })
	cs := d.Spans[i]
	want := fmt.Sprintf("00-%s-%s-01", parent.SpanContext().TraceID(), cs.SpanID)
	if got.Load() != want || cs.ParentSpanID != parent.SpanContext().SpanID().String() || cs.Attributes["plexus.instance"] != "a" {
		t.Fatalf("traceparent %q, want %q; client span %+v", got.Load(), want, cs)
	}
	_ = trace.SpanKindClient
}

func TestHashKeySticksToOneInstance(t *testing.T) {
	t.Parallel()
	bs := []*backend{newBackend(t, "a", status(200)), newBackend(t, "b", status(200)), newBackend(t, "c", status(200))}
	c := newClient(t, snapshot(bs...), Config{Strategy: balance.Hash})
	seen := map[string]string{}
	for i := range 60 {
		key := fmt.Sprint("user-", i%6)
		resp, err := c.Call(context.Background(), "svc", "GET", "/", nil, WithHashKey(key))
		if err != nil {
			t.Fatal(err)
		}
		if prev, ok := seen[key]; ok && prev != resp.Instance {
			t.Fatalf("key %s moved from %s to %s", key, prev, resp.Instance)
		}
		seen[key] = resp.Instance
	}
	if _, err := New(snapshot(bs...), Config{Strategy: "nope"}); err == nil {
		t.Fatal("unknown strategy accepted")
	}
}
