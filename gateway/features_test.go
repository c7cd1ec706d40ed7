package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/plexushq/plexus/internal/logtest"
	"github.com/plexushq/plexus/registry"
)

func TestRateLimitHeadersAnd429(t *testing.T) { eachTransport(t, testRateLimitHeadersAnd429) }

func testRateLimitHeadersAnd429(t *testing.T) {
	clk := newClock()
	be := countingBackend(t, "a")
	cfg := Config{RateLimit: &RateLimitConfig{Requests: 3, Per: time.Minute, Key: "ip+path"}}
	h := startGateway(t, cfg, Options{Clock: clk})
	h.disc.set("svc", be.URL)
	c := client(t)
	for i := 0; i < 3; i++ {
		resp, _ := do(t, c, mustReq(t, "GET", h.url+"/api/svc/x", nil))
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d", i, resp.StatusCode)
		}
		if resp.Header.Get("RateLimit-Limit") != "3" || resp.Header.Get("RateLimit-Remaining") != fmt.Sprint(2-i) ||
			resp.Header.Get("RateLimit-Reset") == "" {
			t.Errorf("request %d: RateLimit headers %v", i, resp.Header)
		}
	}
	resp, b := do(t, c, mustReq(t, "GET", h.url+"/api/svc/x", nil))
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "20" {
		t.Fatalf("status %d Retry-After %q, want 429 and 20 (one token per 20s)", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	p := problemOf(t, b)
	if p.Detail != "Rate limit exceeded" || p.Extra["error"] != "Rate limit exceeded" || p.Extra["retryAfter"] != float64(20) {
		t.Errorf("problem %+v", p)
	}
	if be.hits.Load() != 3 {
		t.Errorf("backend got %d requests, want 3", be.hits.Load())
	}
	// Another path is another key with ip+path.
	if resp, _ := do(t, c, mustReq(t, "GET", h.url+"/api/svc/y", nil)); resp.StatusCode != 200 {
		t.Errorf("other path: status %d", resp.StatusCode)
	}
	clk.Advance(20 * time.Second)
	if resp, _ := do(t, c, mustReq(t, "GET", h.url+"/api/svc/x", nil)); resp.StatusCode != 200 {
		t.Errorf("after refill: status %d", resp.StatusCode)
	}
	if got := testCounter(t, h.g.metrics.rateLimited.WithLabelValues("svc", "api")); got != 1 {
		t.Errorf("rate limited counter %v, want 1", got)
	}
}

func TestRouteRateLimitOverridesGlobal(t *testing.T) {
	eachTransport(t, testRouteRateLimitOverridesGlobal)
}

func testRouteRateLimitOverridesGlobal(t *testing.T) {
	be := countingBackend(t, "a")
	cfg := Config{
		RateLimit: &RateLimitConfig{Requests: 100, Per: time.Minute},
		Routes: []RouteConfig{{Match: RouteMatch{PathPrefix: "/users"}, Service: "svc", StripPrefix: true,
			RateLimit: &RateLimitConfig{Requests: 1, Per: time.Hour, Key: "header:X-User"}}},
	}
	h := startGateway(t, cfg, Options{})
	h.disc.set("svc", be.URL)
	c := client(t)
	send := func(user string) int {
		req := mustReq(t, "GET", h.url+"/users/1", nil)
		req.Header.Set("X-User", user)
		resp, _ := do(t, c, req)
		return resp.StatusCode
	}
	if a, b, c := send("ann"), send("ann"), send("bob"); a != 200 || b != 429 || c != 200 {
		t.Errorf("statuses %d %d %d, want 200 429 200 (per-user limit of the route)", a, b, c)
	}
}

func TestCORS(t *testing.T) { eachTransport(t, testCORS) }

func testCORS(t *testing.T) {
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "http://upstream-says")
		w.Header().Set("Vary", "Accept-Encoding")
	})
	tests := []struct {
		name       string
		cors       CORSConfig
		method     string
		hdr        map[string]string
		status     int
		wantOrigin string
		wantCreds  string
	}{
		{"preflight allowed", CORSConfig{AllowOrigins: []string{"https://app.example"}, AllowCredentials: true, MaxAge: 10 * time.Minute},
			"OPTIONS", map[string]string{"Origin": "https://app.example", "Access-Control-Request-Method": "PUT"}, 204, "https://app.example", "true"},
		{"preflight refused", CORSConfig{AllowOrigins: []string{"https://app.example"}},
			"OPTIONS", map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "PUT"}, 403, "", ""},
		{"star without credentials", CORSConfig{AllowOrigins: []string{"*"}},
			"GET", map[string]string{"Origin": "https://any.example"}, 200, "*", ""},
		{"listed origin echoed", CORSConfig{AllowOrigins: []string{"https://app.example"}, AllowCredentials: true},
			"GET", map[string]string{"Origin": "https://app.example"}, 200, "https://app.example", "true"},
		{"unknown origin not echoed", CORSConfig{AllowOrigins: []string{"https://app.example"}},
			"GET", map[string]string{"Origin": "https://evil.example"}, 200, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cors
			h := startGateway(t, Config{CORS: &cfg}, Options{})
			h.disc.set("svc", be.URL)
			req := mustReq(t, tc.method, h.url+"/api/svc/x", nil)
			for k, v := range tc.hdr {
				req.Header.Set(k, v)
			}
			resp, _ := do(t, client(t), req)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tc.wantOrigin {
				t.Errorf("Allow-Origin %q, want %q", got, tc.wantOrigin)
			}
			if got := resp.Header.Get("Access-Control-Allow-Credentials"); got != tc.wantCreds {
				t.Errorf("Allow-Credentials %q, want %q", got, tc.wantCreds)
			}
			if !strings.Contains(strings.Join(resp.Header.Values("Vary"), ","), "Origin") {
				t.Errorf("Vary %q lacks Origin", resp.Header.Values("Vary"))
			}
			if tc.status == 204 && (resp.Header.Get("Access-Control-Allow-Methods") == "" || resp.Header.Get("Access-Control-Max-Age") != "600") {
				t.Errorf("preflight headers %v", resp.Header)
			}
		})
	}
}

func TestCORSStarWithCredentialsRejected(t *testing.T) {
	_, err := New(Config{CORS: &CORSConfig{AllowOrigins: []string{"*"}, AllowCredentials: true}}, Options{Discovery: newDiscovery()})
	if err == nil || !strings.Contains(err.Error(), "allowCredentials") {
		t.Fatalf("err = %v, want the * with credentials configuration refused", err)
	}
}

func TestHealthShape(t *testing.T) { eachTransport(t, testHealthShape) }

func testHealthShape(t *testing.T) {
	h := startGateway(t, Config{}, Options{})
	h.disc.set("user-service", "http://127.0.0.1:1", "http://127.0.0.1:2|unhealthy")
	resp, b := do(t, client(t), mustReq(t, "GET", h.url+"/health", nil))
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil || resp.StatusCode != 200 {
		t.Fatalf("status %d body %s", resp.StatusCode, b)
	}
	if len(got) != 3 || got["status"] != "healthy" {
		t.Errorf("keys %v, want exactly status, timestamp, services", got)
	}
	if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(got["timestamp"])); err != nil {
		t.Errorf("timestamp: %v", err)
	}
	want := map[string]any{"user-service": map[string]any{"instances": float64(2), "healthy": float64(1)}}
	if fmt.Sprint(got["services"]) != fmt.Sprint(want) {
		t.Errorf("services %v, want %v", got["services"], want)
	}
}

func TestConfiguredRoutes(t *testing.T) { eachTransport(t, testConfiguredRoutes) }

func testConfiguredRoutes(t *testing.T) {
	users, orders := backend(t, echo), backend(t, echo)
	cfg := Config{Routes: []RouteConfig{
		{Match: RouteMatch{PathPrefix: "/users", Host: "api.example.com", Methods: []string{"GET"}}, Service: "users", StripPrefix: true},
		{Name: "orders", Match: RouteMatch{PathPrefix: "/shop/orders"}, Service: "orders"},
	}}
	h := startGateway(t, cfg, Options{})
	h.disc.set("users", users.URL)
	h.disc.set("orders", orders.URL)
	c := client(t)
	tests := []struct {
		method, host, path string
		status             int
		uri                string
	}{
		{"GET", "api.example.com:3000", "/users/7?x=1", 200, "/7?x=1"},
		{"GET", "api.example.com", "/users", 200, "/"},
		{"POST", "api.example.com", "/users/7", 404, ""},
		{"GET", "other.example.com", "/users/7", 404, ""},
		{"GET", "api.example.com", "/usersx", 404, ""},
		{"DELETE", "x", "/shop/orders/9", 200, "/shop/orders/9"},
		{"GET", "x", "/api/users/1", 200, "/1"},
	}
	for _, tc := range tests {
		req := mustReq(t, tc.method, h.url+tc.path, nil)
		req.Host = tc.host
		resp, _ := do(t, c, req)
		if resp.StatusCode != tc.status || resp.Header.Get("X-Echo-URI") != tc.uri {
			t.Errorf("%s %s%s: status %d URI %q, want %d %q", tc.method, tc.host, tc.path, resp.StatusCode,
				resp.Header.Get("X-Echo-URI"), tc.status, tc.uri)
		}
	}
}

func TestStrategiesDistribution(t *testing.T) { eachTransport(t, testStrategiesDistribution) }

func testStrategiesDistribution(t *testing.T) {
	tests := []struct {
		strategy string
		weights  []int
		check    func(t *testing.T, hits []int, n int)
	}{
		{"round-robin", []int{1, 1, 1}, func(t *testing.T, hits []int, n int) { within(t, hits, []float64{1, 1, 1}, 0.02) }},
		{"weighted", []int{3, 1, 1}, func(t *testing.T, hits []int, n int) { within(t, hits, []float64{3, 1, 1}, 0.02) }},
		{"random", []int{1, 1, 1}, func(t *testing.T, hits []int, n int) { within(t, hits, []float64{1, 1, 1}, 0.12) }},
		{"least-connections", []int{1, 1, 1}, func(t *testing.T, hits []int, n int) { within(t, hits, []float64{1, 1, 1}, 0.12) }},
		{"p2c", []int{1, 1, 1}, func(t *testing.T, hits []int, n int) {
			for i, x := range hits {
				if x == 0 {
					t.Errorf("instance %d got nothing: %v", i, hits)
				}
			}
		}},
		{"hash", []int{1, 1, 1}, func(t *testing.T, hits []int, n int) {
			nonzero := 0
			for _, x := range hits {
				if x != 0 {
					nonzero++
					if x != n {
						t.Errorf("one key spread over instances: %v", hits)
					}
				}
			}
			if nonzero != 1 {
				t.Errorf("hits %v, want all on one instance", hits)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.strategy, func(t *testing.T) {
			var bs []*counting
			disc := newDiscovery()
			snap := &registry.ServiceSnapshot{Name: "svc", Gen: 1}
			for i, w := range tc.weights {
				b := countingBackend(t, fmt.Sprint(i))
				bs = append(bs, b)
				in := &registry.Instance{ID: fmt.Sprint("i", i), URL: b.URL, Weight: w, Status: registry.StatusHealthy}
				snap.Instances, snap.Healthy = append(snap.Instances, in), append(snap.Healthy, in)
			}
			disc.snap.Store(&map[string]*registry.ServiceSnapshot{"svc": snap})
			h := startGateway(t, Config{Strategy: tc.strategy, HashKey: "header:X-User"}, Options{Discovery: disc})
			c := client(t)
			const n = 300
			for i := 0; i < n; i++ {
				req := mustReq(t, "GET", h.url+"/api/svc/x", nil)
				req.Header.Set("X-User", "ann")
				if resp, _ := do(t, c, req); resp.StatusCode != 200 {
					t.Fatalf("status %d", resp.StatusCode)
				}
			}
			hits := make([]int, len(bs))
			for i, b := range bs {
				hits[i] = int(b.hits.Load())
			}
			tc.check(t, hits, n)
		})
	}
}

// within checks that hits follow the shares within tol (fraction of all).
func within(t *testing.T, hits []int, shares []float64, tol float64) {
	t.Helper()
	total, sum := 0, 0.0
	for i := range hits {
		total += hits[i]
		sum += shares[i]
	}
	for i := range hits {
		got, want := float64(hits[i])/float64(total), shares[i]/sum
		if got < want-tol || got > want+tol {
			t.Errorf("instance %d got %.3f of requests, want %.3f±%.2f (hits %v)", i, got, want, tol, hits)
		}
	}
}

func TestAccessLogAndMetrics(t *testing.T) { eachTransport(t, testAccessLogAndMetrics) }

func testAccessLogAndMetrics(t *testing.T) {
	be := countingBackend(t, "a")
	var buf logtest.Buffer
	reg := prometheus.NewRegistry()
	h := startGateway(t, Config{}, Options{AccessLog: &buf, Metrics: reg})
	h.disc.set("svc", be.URL)
	req := mustReq(t, "POST", h.url+"/api/svc/x?secret=1", strings.NewReader("hi"))
	req.Header.Set("X-Request-ID", "rid-1")
	do(t, client(t), req)
	do(t, client(t), mustReq(t, "GET", h.url+"/api/ghost/x", nil))
	var line map[string]any
	first, _, _ := strings.Cut(buf.String(), "\n")
	if err := json.Unmarshal([]byte(first), &line); err != nil {
		t.Fatalf("access log line %q: %v", first, err)
	}
	for k, v := range map[string]any{"id": "rid-1", "method": "POST", "path": "/api/svc/x", "status": float64(200),
		"service": "svc", "route": "api", "upstream": "i0", "attempts": float64(1), "client": "127.0.0.1", "bytes": float64(1)} {
		if line[k] != v {
			t.Errorf("access log %s = %v, want %v (line %s)", k, line[k], v, first)
		}
	}
	if strings.Contains(first, "secret") {
		t.Error("the query string was logged")
	}
	if got := testCounter(t, h.g.metrics.requests.WithLabelValues("svc", "api", "POST", "200")); got != 1 {
		t.Errorf("requests_total{svc,api,POST,200} = %v", got)
	}
	if got := testCounter(t, h.g.metrics.requests.WithLabelValues("unknown", "api", "GET", "404")); got != 1 {
		t.Errorf("unknown services are not bucketed: %v", got)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"plexus_gateway_requests_total", "plexus_gateway_request_duration_seconds"} {
		if !names[n] {
			t.Errorf("metric %s not registered", n)
		}
	}
}
