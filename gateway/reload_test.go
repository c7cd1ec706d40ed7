package gateway

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestReloadUnderLoadNoFailedRequests(t *testing.T) {
	eachTransport(t, testReloadUnderLoadNoFailedRequests)
}

func testReloadUnderLoadNoFailedRequests(t *testing.T) {
	a, b := countingBackend(t, "a"), countingBackend(t, "b")
	h := startGateway(t, Config{}, Options{})
	h.disc.set("svc", a.URL, b.URL)
	ws := wsEcho(t)
	h.disc.set("chat", ws.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(h.url, "http")+"/api/chat/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()

	c := client(t)
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 6; w++ {
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
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	strategies := []string{"round-robin", "p2c", "least-connections", "weighted", "random"}
	for i := 0; i < 50; i++ {
		cfg := Config{Strategy: strategies[i%len(strategies)], Timeout: time.Duration(10+i) * time.Second,
			RateLimit:           &RateLimitConfig{Requests: 1000000, Per: time.Second},
			UpstreamIdleTimeout: time.Duration(3+i%3) * time.Second}
		if err := h.g.Apply(cfg); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		if err := h.g.Apply(Config{Strategy: "nope"}); err == nil {
			t.Fatal("an invalid configuration was applied")
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Fatalf("%d failed and %d good requests while reloading; want no failures", failed.Load(), ok.Load())
	}
	if err := conn.Write(ctx, websocket.MessageText, []byte("still here")); err != nil {
		t.Fatalf("WebSocket dropped by reloads: %v", err)
	}
	if _, msg, err := conn.Read(ctx); err != nil || string(msg) != "still here" {
		t.Fatalf("WebSocket after reloads: %q %v", msg, err)
	}
	if got := h.g.Config().Strategy; got != strategies[49%len(strategies)] {
		t.Errorf("configuration in force has strategy %q", got)
	}
}

func TestInvalidConfigRejectedOldKept(t *testing.T) {
	eachTransport(t, testInvalidConfigRejectedOldKept)
}

func testInvalidConfigRejectedOldKept(t *testing.T) {
	be := countingBackend(t, "a")
	h := startGateway(t, Config{Routes: []RouteConfig{{Match: RouteMatch{PathPrefix: "/u"}, Service: "svc"}}}, Options{})
	h.disc.set("svc", be.URL)
	bad := []string{
		"strategy: fastest",
		"unknownKey: 1",
		"cors: {allowOrigins: ['*'], allowCredentials: true}",
		"routes: [{match: {pathPrefix: users}, service: svc}]",
		"routes: [{match: {pathPrefix: /a/../b}, service: svc}]",
		"rateLimit: {requests: 0, per: 1s}",
		"rateLimit: {requests: 1, per: 1s, key: cookie}",
		"trustedProxies: [not-a-cidr]",
		"timeout: fast",
		"retries: {attempts: -1}",
		"retries: {budget: 2}",
		"breaker: {failureRatio: 1.5}",
		"services: {'bad name': {timeout: 1s}}",
		"maxBodyBytes: -5",
	}
	for _, y := range bad {
		_, err := ParseConfig([]byte(y))
		if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("ParseConfig(%q) = %v, want ErrInvalidConfig", y, err)
		}
	}
	if err := h.g.Apply(Config{Strategy: "fastest"}); err == nil {
		t.Fatal("Apply accepted an unknown strategy")
	}
	resp, _ := do(t, client(t), mustReq(t, "GET", h.url+"/u/1", nil))
	if resp.StatusCode != 200 {
		t.Fatalf("after a rejected reload the old route answers %d, want 200", resp.StatusCode)
	}
}

func TestParseConfigExample(t *testing.T) {
	y := `
trustedProxies: [10.0.0.0/8, 192.168.1.7]
maxBodyBytes: 10485760
timeout: 30s
retries: {attempts: 2, budget: 0.2}
strategy: p2c
breaker: {failureThreshold: 5, failureRatio: 0.5, minRequests: 20, window: 10s,
          resetTimeout: 60s, halfOpenRequests: 3}
rateLimit: {requests: 100, per: 1m, burst: 100, key: ip+path}
cors: {allowOrigins: ["*"], allowMethods: [GET, POST, PUT, DELETE, OPTIONS],
       allowHeaders: [Origin, X-Requested-With, Content-Type, Accept, Authorization],
       allowCredentials: false, maxAge: 10m}
services:
  user-service: {strategy: least-connections, timeout: 5s}
routes:
  - match: {pathPrefix: /users, host: api.example.com, methods: [GET]}
    service: user-service
    stripPrefix: true
    rateLimit: {requests: 10, per: 1s}
`
	cfg, err := ParseConfig([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Timeout != 30*time.Second || cfg.Services["user-service"].Timeout != 5*time.Second ||
		cfg.RateLimit.Per != time.Minute || *cfg.Retries.Attempts != 2 || !cfg.Routes[0].StripPrefix {
		t.Errorf("decoded %+v", cfg)
	}
	g, err := New(cfg, Options{Discovery: newDiscovery()})
	if err != nil {
		t.Fatal(err)
	}
	s := g.cfg.Load().settingsOf("user-service")
	if s.strategy != "least-connections" || s.timeout != 5*time.Second || s.limiter == nil {
		t.Errorf("user-service settings %+v", s)
	}
	_ = g.Stop(context.Background())
}

func TestAccessLogReopenedOnReload(t *testing.T) { eachTransport(t, testAccessLogReopenedOnReload) }

func testAccessLogReopenedOnReload(t *testing.T) {
	be := countingBackend(t, "a")
	path := filepath.Join(t.TempDir(), "access.log")
	h := startGateway(t, Config{AccessLog: path}, Options{})
	h.disc.set("svc", be.URL)
	c := client(t)
	do(t, c, mustReq(t, "GET", h.url+"/api/svc/one", nil))
	if err := os.Rename(path, path+".1"); err != nil { // logrotate moves the file
		t.Fatal(err)
	}
	if err := h.g.Apply(Config{AccessLog: path}); err != nil {
		t.Fatal(err)
	}
	do(t, c, mustReq(t, "GET", h.url+"/api/svc/two", nil))
	h.g.logs.flush()
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if !strings.Contains(string(old), "/api/svc/one") || strings.Contains(string(old), "/api/svc/two") ||
		!strings.Contains(string(cur), "/api/svc/two") {
		t.Fatalf("rotated file %q, new file %q", old, cur)
	}
}
