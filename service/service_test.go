package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plexushq/plexus/internal/nodetest"

	"go.uber.org/goleak"

	"github.com/plexushq/plexus/client"
	"github.com/plexushq/plexus/registry"
	"github.com/plexushq/plexus/server"
	"github.com/plexushq/plexus/service"
	"github.com/plexushq/plexus/telemetry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

const token = "service-test-token-0123456789"

// startNode runs a real Plexus node (registry API, trace receiver) on loopback.
func startNode(t *testing.T) string {
	t.Helper()
	n := nodetest.Start(t, server.Config{Roles: []string{server.RoleControl}, AdminToken: token})
	return "http://" + n.AdminAddr()
}

// instance runs one service instance until its cancel is called; done
// receives Run's result.
type instance struct {
	cancel  context.CancelFunc
	done    chan error
	stopped chan struct{} // closed when Run returned
	hits    atomic.Int64
	url     string
}

func runInstance(t *testing.T, admin, id string) *instance {
	t.Helper()
	in := &instance{done: make(chan error, 1), stopped: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	in.cancel = cancel
	ready := make(chan string, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in.hits.Add(1)
		time.Sleep(5 * time.Millisecond) // in flight long enough to overlap the drain
		_ = json.NewEncoder(w).Encode(map[string]string{"id": id})
	})
	go func() {
		defer close(in.stopped)
		in.done <- service.Run(ctx, service.Config{Name: "echo", ID: id, Addr: "127.0.0.1:0", RegistryURL: admin,
			Token: token, Version: "1.0.0", DrainDelay: 300 * time.Millisecond, Logger: quiet,
			OnReady: func(u string) { ready <- u }}, h)
	}()
	select {
	case in.url = <-ready:
	case err := <-in.done:
		t.Fatalf("instance %s: %v", id, err)
	case <-time.After(10 * time.Second):
		t.Fatal("instance did not start")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-in.done: // not yet collected by the test
		case <-in.stopped:
		case <-time.After(10 * time.Second):
			t.Error("instance did not stop")
		}
	})
	return in
}

func waitHealthy(t *testing.T, c *registry.Cache, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if s := c.Service("echo"); (s == nil && n == 0) || (s != nil && len(s.Healthy) == n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cache never showed %d healthy instances", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDrainAndDeregisterWithoutFailedRequests(t *testing.T) {
	admin := startNode(t)
	a := runInstance(t, admin, "echo-a")
	b := runInstance(t, admin, "echo-b")

	rc, err := registry.NewClient(admin, token, registry.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	cache := registry.NewHTTPCache(rc, registry.CacheConfig{Logger: quiet})
	if err := cache.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer cache.Stop(context.Background())
	waitHealthy(t, cache, 2)
	cl, err := client.New(cache, client.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.CloseIdleConnections()

	var calls, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				calls.Add(1)
				if err := cl.GetJSON(context.Background(), "echo", "/work", nil); err != nil {
					failed.Add(1)
					t.Errorf("call failed during drain: %v", err)
				}
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	a.cancel() // SIGTERM equivalent
	select {
	case err := <-a.done:
		if err != nil {
			t.Fatalf("Run after drain: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("instance a did not stop")
	}
	aHits := a.hits.Load()
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || a.hits.Load() != aHits || aHits == 0 {
		t.Fatalf("%d of %d calls failed; a served %d (%d after stopping)", failed.Load(), calls.Load(), aHits, a.hits.Load()-aHits)
	}
	info, err := rc.Get(context.Background(), "echo")
	if err != nil || len(info.Instances) != 1 || info.Instances[0].ID != "echo-b" {
		t.Fatalf("registry after drain: %+v %v", info, err)
	}
	t.Logf("%d calls, none failed; a served %d, b served %d", calls.Load(), aHits, b.hits.Load())

	t0 := time.Now()
	b.cancel()
	<-b.done
	t.Logf("b stopped in %v", time.Since(t0))
	if _, err := rc.Get(context.Background(), "echo"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("echo still registered: %v", err)
	}
	// Each instance exported its server spans to the node on the way out.
	req, _ := http.NewRequest("GET", admin+"/v1/traces?service=echo&limit=5", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list []telemetry.TraceSummary
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || len(list) == 0 || list[0].RootService != "echo" {
		t.Fatalf("traces at the node: %+v %v", list, err)
	}
}

func TestHealthMetricsAndNoRegistry(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- service.Run(ctx, service.Config{Name: "solo", Addr: "127.0.0.1:0", DrainDelay: time.Millisecond,
			Logger: quiet, OnReady: func(u string) { ready <- u }},
			http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	}()
	u := <-ready
	for _, tc := range []struct {
		path string
		want int
	}{{"/health", 200}, {"/x", 418}, {"/metrics", 200}} {
		path, want := tc.path, tc.want
		resp, err := http.Get(u + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
		if path == "/metrics" && !strings.Contains(string(b), `plexus_service_requests_total{code="418",method="GET"} 1`) {
			t.Fatalf("metrics: %s", b)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := service.New(context.Background(), service.Config{Name: "bad name!"}); err == nil {
		t.Fatal("bad name accepted")
	}
}

func TestRunFailsWhenRegistryUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	done := make(chan error, 1)
	go func() {
		done <- service.Run(context.Background(), service.Config{Name: "lonely", Addr: "127.0.0.1:0", RegistryURL: dead,
			Token: token, Logger: quiet}, http.NotFoundHandler())
	}()
	select { // Run gives up by itself (its context never ends)
	case err = <-done:
		if err == nil || !strings.Contains(err.Error(), "register") {
			t.Fatalf("Run with an unreachable registry: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Run kept trying an unreachable registry")
	}
}
