package gateway

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plexushq/plexus/internal/httpx"
	"github.com/plexushq/plexus/registry"
)

// counting is a backend that counts its requests and answers with status().
type counting struct {
	*httptest.Server
	hits   atomic.Int64
	status atomic.Int64
}

func countingBackend(t *testing.T, name string) *counting {
	c := &counting{}
	c.status.Store(200)
	c.Server = backend(t, func(w http.ResponseWriter, r *http.Request) {
		c.hits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Backend", name)
		w.WriteHeader(int(c.status.Load()))
		_, _ = io.WriteString(w, name)
	})
	return c
}

func TestKilledInstanceUnderLoadNoClientErrors(t *testing.T) {
	eachTransport(t, testKilledInstanceUnderLoadNoClientErrors)
}

func testKilledInstanceUnderLoadNoClientErrors(t *testing.T) {
	bs := []*counting{countingBackend(t, "a"), countingBackend(t, "b"), countingBackend(t, "c")}
	cfg := Config{Strategy: "round-robin", Ejection: &EjectionConfig{ConsecutiveFailures: 2}}
	h := startGateway(t, cfg, Options{})
	h.disc.set("svc", bs[0].URL, bs[1].URL, bs[2].URL)
	c := client(t)
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(h.url + "/api/svc/x")
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprint("status ", resp.StatusCode))
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	for ok.Load() < 300 {
		time.Sleep(5 * time.Millisecond)
	}
	bs[1].CloseClientConnections()
	bs[1].Close() // killed: connections refused from now on
	killedAt := ok.Load()
	for ok.Load() < killedAt+600 {
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d client errors after killing an instance (first: %v); want 0", n, firstErr.Load())
	}
	if got := testCounter(t, h.g.metrics.ejections.WithLabelValues("svc")); got < 1 {
		t.Errorf("ejections = %v, want the dead instance ejected", got)
	}
	if got := testCounter(t, h.g.metrics.retries.WithLabelValues("svc")); got < 1 {
		t.Errorf("retries = %v, want retries to the live instances", got)
	}
}

func TestRetryGoesToADifferentInstance(t *testing.T) {
	eachTransport(t, testRetryGoesToADifferentInstance)
}

func testRetryGoesToADifferentInstance(t *testing.T) {
	bad, good := countingBackend(t, "bad"), countingBackend(t, "good")
	bad.status.Store(503)
	cfg := Config{Strategy: "round-robin", Ejection: &EjectionConfig{Disabled: true},
		Breaker: &BreakerConfig{Disabled: true}, Retries: &RetryConfig{Budget: floatp(1)}}
	h := startGateway(t, cfg, Options{})
	h.disc.set("svc", bad.URL, good.URL)
	c := client(t)
	for i := 0; i < 20; i++ {
		resp, body := do(t, c, mustReq(t, "GET", h.url+"/api/svc/x", nil))
		if resp.StatusCode != 200 || string(body) != "good" {
			t.Fatalf("GET %d: status %d body %q, want the good instance's 200", i, resp.StatusCode, body)
		}
	}
	if n := bad.hits.Load(); n > 20 || n == 0 {
		t.Errorf("bad instance got %d tries for 20 requests; want each request to try it at most once", n)
	}
	// A POST is not idempotent: the 503 passes through unchanged.
	saw503 := false
	for i := 0; i < 4; i++ {
		resp, body := do(t, c, mustReq(t, "POST", h.url+"/api/svc/x", strings.NewReader("p")))
		if resp.StatusCode == 503 {
			saw503 = true
			if string(body) != "bad" {
				t.Errorf("POST 503 body %q, want the upstream's", body)
			}
		}
	}
	if !saw503 {
		t.Error("POSTs were retried; want the upstream's 503")
	}
}

// TestRetryBudgetForgetsQuietTraffic: retries.budget means what it means
// in the service client (package retry): over the last 10 seconds,
// retries are at most budget × requests plus 1 per second. The gateway's
// token bucket used to bank retries from any past traffic (up to 100), so
// an outage a minute after a busy spell was retried in full.
func TestRetryBudgetForgetsQuietTraffic(t *testing.T) {
	var failing atomic.Bool
	var hits atomic.Int64
	h := func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}
	a, b, c := backend(t, h), backend(t, h), backend(t, h)
	clk := newClock()
	g := startGateway(t, Config{Retries: &RetryConfig{Attempts: intp(2), Budget: floatp(0.2)},
		Breaker: &BreakerConfig{Disabled: true}, Ejection: &EjectionConfig{Disabled: true}}, Options{Clock: clk})
	g.disc.set("svc", a.URL, b.URL, c.URL)
	hc := client(t)
	for range 200 { // a busy spell: 200 requests, all fine
		if resp, _ := do(t, hc, mustReq(t, "GET", g.url+"/api/svc/x", nil)); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	clk.Advance(time.Minute)
	failing.Store(true)
	hits.Store(0)
	for range 10 { // an outage: each request could be tried 3 times
		do(t, hc, mustReq(t, "GET", g.url+"/api/svc/x", nil))
	}
	// 10 requests in the window: 0.2 × 10 + 1/s × 10s = 12 retries.
	if retries := hits.Load() - 10; retries != 12 {
		t.Fatalf("%d retries for 10 requests a minute after a busy spell, want the budget's 12", retries)
	}
}

// The upstream answers 200 after 30s: only the gateway's 150ms timeout
// turns that into a 504 (no wall-clock assertion needed).
func TestUpstreamTimeout504(t *testing.T) { eachTransport(t, testUpstreamTimeout504) }

func testUpstreamTimeout504(t *testing.T) {
	slow := backend(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
			w.WriteHeader(200)
		}
	})
	h := startGateway(t, Config{Timeout: 150 * time.Millisecond, Retries: &RetryConfig{Attempts: intp(0)}}, Options{})
	h.disc.set("svc", slow.URL)
	resp, b := do(t, client(t), mustReq(t, "GET", h.url+"/api/svc/x", nil))
	if resp.StatusCode != 504 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d Retry-After %q, want 504 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if p := problemOf(t, b); p.Type != httpx.ProblemTypeBase+"upstream-timeout" || !strings.Contains(p.Detail, "svc") {
		t.Errorf("problem %+v", p)
	}
}

func TestConnectionRefused502(t *testing.T) { eachTransport(t, testConnectionRefused502) }

func testConnectionRefused502(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL
	dead.Close()
	h := startGateway(t, Config{Ejection: &EjectionConfig{Disabled: true}}, Options{})
	h.disc.set("svc", url)
	resp, b := do(t, client(t), mustReq(t, "POST", h.url+"/api/svc/x", strings.NewReader("x")))
	if resp.StatusCode != 502 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d, want 502 with Retry-After: %s", resp.StatusCode, b)
	}
	if p := problemOf(t, b); !strings.Contains(p.Detail, "svc") || strings.Contains(p.Detail, "127.0.0.1") {
		t.Errorf("detail %q should name the service and not leak addresses", p.Detail)
	}
}

func TestBreakerOpensHalfOpensCloses(t *testing.T) { eachTransport(t, testBreakerOpensHalfOpensCloses) }

func testBreakerOpensHalfOpensCloses(t *testing.T) {
	clk := newClock()
	be := countingBackend(t, "a")
	cfg := Config{
		Breaker:  &BreakerConfig{FailureThreshold: 3, ResetTimeout: 10 * time.Second, HalfOpenRequests: 2, MinRequests: 1000},
		Retries:  &RetryConfig{Attempts: intp(0)},
		Ejection: &EjectionConfig{Disabled: true},
	}
	h := startGateway(t, cfg, Options{Clock: clk})
	h.disc.set("svc", be.URL)
	c := client(t)
	get := func() (*http.Response, []byte) { return do(t, c, mustReq(t, "GET", h.url+"/api/svc/x", nil)) }
	be.status.Store(500)
	for i := 0; i < 3; i++ {
		if resp, _ := get(); resp.StatusCode != 500 {
			t.Fatalf("failure %d: status %d, want the upstream's 500", i, resp.StatusCode)
		}
	}
	hits := be.hits.Load()
	resp, b := get()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "10" {
		t.Fatalf("open breaker: status %d Retry-After %q, want 503 and 10", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if p := problemOf(t, b); p.Type != httpx.ProblemTypeBase+"circuit-open" || !strings.Contains(p.Detail, "Circuit breaker is OPEN") {
		t.Errorf("problem %+v", p)
	}
	if be.hits.Load() != hits {
		t.Error("an open breaker let a request through")
	}
	if st := breakerState(h.g, "svc", ""); st != "open" {
		t.Errorf("listed state %q, want open", st)
	}
	// After the reset timeout, probes go through; two successes close it.
	clk.Advance(10 * time.Second)
	be.status.Store(200)
	for i := 0; i < 2; i++ {
		if resp, _ := get(); resp.StatusCode != 200 {
			t.Fatalf("probe %d: status %d", i, resp.StatusCode)
		}
	}
	if st := breakerState(h.g, "svc", ""); st != "closed" {
		t.Fatalf("after 2 good probes the breaker is %q, want closed", st)
	}
	// Open again; a failed probe reopens it.
	be.status.Store(500)
	for i := 0; i < 3; i++ {
		get()
	}
	clk.Advance(10 * time.Second)
	if resp, _ := get(); resp.StatusCode != 500 {
		t.Fatalf("probe: status %d, want the upstream's 500", resp.StatusCode)
	}
	if st := breakerState(h.g, "svc", ""); st != "open" {
		t.Errorf("after a failed probe the breaker is %q, want open", st)
	}
	if got := testCounter(t, h.g.metrics.breakerChanges.WithLabelValues("svc", "service", "open")); got != 3 {
		t.Errorf("open transitions counted %v, want 3 (two trips and a failed probe)", got)
	}
}

func breakerState(g *Gateway, service, instance string) string {
	for _, b := range g.Breakers() {
		if b.Service == service && b.Instance == instance {
			return b.State
		}
	}
	return ""
}

func TestBreakersHandlerShape(t *testing.T) {
	be := countingBackend(t, "a")
	h := startGateway(t, Config{}, Options{})
	h.disc.set("svc", be.URL)
	do(t, client(t), mustReq(t, "GET", h.url+"/api/svc/x", nil))
	rec := httptest.NewRecorder()
	NewAPI(h.g).Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/v1/breakers", nil))
	body := rec.Body.String()
	for _, want := range []string{`"service":"svc"`, `"instance":"i0"`, `"state":"closed"`, `"failures":0`} {
		if !strings.Contains(body, want) {
			t.Errorf("GET /v1/breakers = %s; missing %s", body, want)
		}
	}
}

func TestEjectionGrowsAndNeverEjectsAll(t *testing.T) {
	eachTransport(t, testEjectionGrowsAndNeverEjectsAll)
}

func testEjectionGrowsAndNeverEjectsAll(t *testing.T) {
	clk := newClock()
	h := startGateway(t, Config{Ejection: &EjectionConfig{ConsecutiveFailures: 1, BaseTime: time.Second,
		MaxTime: 3 * time.Second}}, Options{Clock: clk})
	g := h.g
	snap := &registry.ServiceSnapshot{Name: "svc", Gen: 1}
	for i := 0; i < 2; i++ {
		in := &registry.Instance{ID: fmt.Sprint("i", i), URL: "http://127.0.0.1:1", Status: registry.StatusHealthy}
		snap.Instances, snap.Healthy = append(snap.Instances, in), append(snap.Healthy, in)
	}
	s := g.serviceFor("svc")
	p := s.poolFor(snap, g.cfg.Load().settingsOf("svc"))
	wantUntil := func(d time.Duration) {
		t.Helper()
		if got := time.Duration(p.ups[0].ejectedUntil.Load() - clk.Now().UnixNano()); got != d {
			t.Fatalf("ejected for %v, want %v", got, d)
		}
	}
	if !s.failed(p, 0, clk.Now()) {
		t.Fatal("first failure past the threshold did not eject")
	}
	wantUntil(time.Second)
	if s.failed(p, 1, clk.Now()) {
		t.Fatal("the last instance was ejected; never all of a service")
	}
	for _, d := range []time.Duration{2 * time.Second, 3 * time.Second, 3 * time.Second} {
		clk.Advance(d) // let the previous ejection expire
		if p.exclusions(clk.Now()) != 0 {
			t.Fatal("ejection did not expire")
		}
		if !s.failed(p, 0, clk.Now()) {
			t.Fatal("repeat failure did not eject")
		}
		wantUntil(d) // doubles, capped at MaxTime
	}
}

func TestAllInstancesBadLastAnswerPassesThrough(t *testing.T) {
	eachTransport(t, testAllInstancesBadLastAnswerPassesThrough)
}

func testAllInstancesBadLastAnswerPassesThrough(t *testing.T) {
	a, b := countingBackend(t, "a"), countingBackend(t, "b")
	a.status.Store(503)
	b.status.Store(503)
	h := startGateway(t, Config{Retries: &RetryConfig{Attempts: intp(5), Budget: floatp(1)},
		Breaker: &BreakerConfig{Disabled: true}, Ejection: &EjectionConfig{Disabled: true}}, Options{})
	h.disc.set("svc", a.URL, b.URL)
	resp, body := do(t, client(t), mustReq(t, "GET", h.url+"/api/svc/x", nil))
	if resp.StatusCode != 503 || (string(body) != "a" && string(body) != "b") {
		t.Fatalf("status %d body %q, want the last upstream's own 503", resp.StatusCode, body)
	}
	if a.hits.Load() != 1 || b.hits.Load() != 1 {
		t.Errorf("hits a=%d b=%d, want one try each", a.hits.Load(), b.hits.Load())
	}
}

func TestOpenInstanceBreakerLeavesInstanceOut(t *testing.T) {
	eachTransport(t, testOpenInstanceBreakerLeavesInstanceOut)
}

func testOpenInstanceBreakerLeavesInstanceOut(t *testing.T) {
	bad, good := countingBackend(t, "bad"), countingBackend(t, "good")
	bad.status.Store(500)
	cfg := Config{Strategy: "round-robin", Retries: &RetryConfig{Attempts: intp(0)},
		Breaker:  &BreakerConfig{FailureThreshold: 2, MinRequests: 1000, ResetTimeout: time.Hour},
		Ejection: &EjectionConfig{Disabled: true}}
	h := startGateway(t, cfg, Options{Clock: newClock()})
	h.disc.set("svc", bad.URL, good.URL)
	c := client(t)
	for i := 0; i < 4; i++ {
		do(t, c, mustReq(t, "GET", h.url+"/api/svc/x", nil))
	}
	if st := breakerState(h.g, "svc", "i0"); st != "open" {
		t.Fatalf("bad instance's breaker is %q, want open", st)
	}
	hits := bad.hits.Load()
	for i := 0; i < 10; i++ {
		if resp, body := do(t, c, mustReq(t, "GET", h.url+"/api/svc/x", nil)); resp.StatusCode != 200 {
			t.Fatalf("status %d %s: an instance with an open breaker was picked", resp.StatusCode, body)
		}
	}
	if bad.hits.Load() != hits {
		t.Error("the instance with an open breaker still got requests")
	}
	if st := breakerState(h.g, "svc", ""); st != "closed" {
		t.Errorf("service breaker %q, want closed", st)
	}
}

// TestManyInstancesAllBreakersOpenEnds: the exclusion mask holds 64
// instances; with more than that and every instance breaker open, a request
// must still end (503) instead of picking the 65th instance forever.
func TestManyInstancesAllBreakersOpenEnds(t *testing.T) {
	eachTransport(t, testManyInstancesAllBreakersOpenEnds)
}

func testManyInstancesAllBreakersOpenEnds(t *testing.T) {
	b := countingBackend(t, "x")
	urls := make([]string, 70)
	for i := range urls {
		urls[i] = fmt.Sprintf("%s/i%d", b.URL, i)
	}
	cfg := Config{Strategy: "random", Ejection: &EjectionConfig{Disabled: true},
		Breaker: &BreakerConfig{FailureThreshold: 1, MinRequests: 1000, ResetTimeout: time.Hour}}
	h := startGateway(t, cfg, Options{})
	h.disc.set("svc", urls...)
	c := client(t)
	if resp, _ := do(t, c, mustReq(t, "GET", h.url+"/api/svc/x", nil)); resp.StatusCode != 200 {
		t.Fatalf("warm-up: status %d", resp.StatusCode)
	}
	p := h.g.serviceFor("svc").cur.Load()
	if p == nil || p.set.Len() != 70 {
		t.Fatalf("pool not built with 70 instances")
	}
	for _, br := range p.brs {
		tk, err := br.Allow()
		if err == nil {
			br.Done(tk, false)
		}
	}
	c.Timeout = 5 * time.Second
	resp, err := c.Get(h.url + "/api/svc/x")
	if err != nil {
		t.Fatalf("request with every instance breaker open did not end: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d Retry-After %q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}
