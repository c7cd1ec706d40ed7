package docs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/plexushq/plexus/docs"
	"github.com/plexushq/plexus/eventstore"
	"github.com/plexushq/plexus/internal/nodetest"
	"github.com/plexushq/plexus/server"
)

// gatewayConfig gives the contract test's node the gateway features whose
// answers the spec describes: CORS, a body limit, a short timeout and a
// rate limit on services of their own.
const gatewayConfig = `gateway:
  maxBodyBytes: 4096
  cors: {allowOrigins: ["https://ok.example"]}
  services:
    slow: {timeout: 200ms, retries: {attempts: 0}}
    limited: {rateLimit: {requests: 1, per: 1m}}
    dead: {retries: {attempts: 0}}
`

// env is one running node and what the contract test needs around it.
type env struct {
	c        *contract
	node     *server.Node
	admin    string // base URL
	gateway  string // base URL
	token    string
	upstream *httptest.Server
}

// startEnv runs the node; with, when given, changes its configuration.
func startEnv(t *testing.T, with ...func(*server.Config)) *env {
	t.Helper()
	c := loadContract(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/sleep") {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		}
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"method": r.Method, "path": r.URL.Path, "query": r.URL.RawQuery, "body": string(b)})
	}))
	t.Cleanup(up.Close)
	file := filepath.Join(t.TempDir(), "plexus.yaml")
	if err := os.WriteFile(file, []byte(gatewayConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	const token = "contract-test-token-0123456789"
	cfg := server.Config{AdminToken: token, ConfigFile: file}
	for _, f := range with {
		f(&cfg)
	}
	n := nodetest.Start(t, cfg)
	return &env{c: c, node: n, admin: "http://" + n.AdminAddr(), gateway: "http://" + n.GatewayAddr(), token: token, upstream: up}
}

// a sends an admin request with the token.
func (e *env) a(t *testing.T, method, path string, body any, want int) answer {
	t.Helper()
	return e.c.do(t, e.admin, call{listener: admin, method: method, path: path, token: e.token, body: jsonBody(t, body), want: want})
}

// bad sends an admin request the spec itself forbids.
func (e *env) bad(t *testing.T, method, path string, body any, want int) answer {
	t.Helper()
	return e.c.do(t, e.admin, call{listener: admin, method: method, path: path, token: e.token, body: jsonBody(t, body), want: want, invalid: true})
}

// g sends a gateway request.
func (e *env) g(t *testing.T, k call) answer {
	t.Helper()
	k.listener = gateway
	if k.method == "" {
		k.method = http.MethodGet
	}
	return e.c.do(t, e.gateway, k)
}

func jsonBody(t *testing.T, v any) []byte {
	t.Helper()
	switch v := v.(type) {
	case nil:
		return nil
	case []byte:
		return v
	case string:
		return []byte(v)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func problemType(t *testing.T, a answer) string {
	t.Helper()
	typ, _ := a.json(t)["type"].(string)
	return typ
}

// TestContract runs a real node with every role and calls every operation
// of docs/openapi.yaml with real requests, successes and the main errors,
// validating each request and answer against the spec. It fails when an
// operation of the spec was never answered successfully, so a new route
// needs a case here.
func TestContract(t *testing.T) {
	e := startEnv(t)
	t.Run("node", e.nodeCases)
	t.Run("registry", e.registryCases)
	t.Run("gateway", e.gatewayCases)
	t.Run("queues", e.queueCases)
	t.Run("events", e.eventCases)
	t.Run("subscriptions", e.subscriptionCases)
	t.Run("traces", e.traceCases)
	if f := flag.Lookup("test.run"); f != nil && strings.Contains(f.Value.String(), "/") {
		return // some cases were left out with -run
	}
	if left := e.c.untested(); len(left) > 0 {
		t.Errorf("operations of docs/openapi.yaml no case answered successfully:\n%s", strings.Join(left, "\n"))
	}
}

// TestContractCoversEveryMountedRoute walks the admin mux of a node with
// every role: every pattern it mounts must be an operation of the spec on
// the admin listener, and every such operation must be mounted.
func TestContractCoversEveryMountedRoute(t *testing.T) {
	c := loadContract(t)
	n := nodetest.Start(t, server.Config{})
	mounted := n.AdminRoutes()
	var described []string
	for _, o := range c.ops {
		if o.listener == admin && !slices.Contains(described, o.mounted) {
			described = append(described, o.mounted)
		}
	}
	slices.Sort(described)
	for _, p := range mounted {
		if !slices.Contains(described, p) {
			t.Errorf("the node mounts %q on the admin listener; docs/openapi.yaml does not describe it", p)
		}
	}
	for _, p := range described {
		if !slices.Contains(mounted, p) {
			t.Errorf("docs/openapi.yaml describes %q on the admin listener; the node does not mount it", p)
		}
	}
	if len(mounted) < 40 {
		t.Errorf("only %d admin routes mounted: %v", len(mounted), mounted)
	}
}

func (e *env) nodeCases(t *testing.T) {
	for _, l := range []struct{ name, base string }{{admin, e.admin}, {gateway, e.gateway}} {
		a := e.c.do(t, l.base, call{listener: l.name, method: "GET", path: "/health", want: 200})
		if h := a.json(t); h["status"] != "healthy" {
			t.Errorf("%s /health: %s", l.name, a.body)
		}
	}
	e.c.do(t, e.admin, call{listener: admin, method: "GET", path: "/ready", want: 200})
	if a := e.c.do(t, e.admin, call{listener: admin, method: "GET", path: "/metrics", want: 200}); !bytes.Contains(a.body, []byte("plexus_build_info")) {
		t.Errorf("/metrics: %s", clip(a.body))
	}
	if a := e.c.do(t, e.admin, call{listener: admin, method: "GET", path: "/openapi.yaml", want: 200}); !bytes.Equal(a.body, docs.OpenAPI) {
		t.Error("/openapi.yaml is not docs/openapi.yaml")
	}
	if h := e.a(t, "GET", "/v1/metrics/history", nil, 200).json(t); h["capacity"] == nil {
		t.Errorf("metrics history: %v", h)
	}
	e.c.do(t, e.admin, call{listener: admin, method: "GET", path: "/ui", want: 301})
	e.c.do(t, e.admin, call{listener: admin, method: "GET", path: "/ui/", want: 200})
	e.c.do(t, e.admin, call{listener: admin, method: "GET", path: "/ui/app.js", want: 200})
	e.c.do(t, e.admin, call{listener: admin, method: "GET", path: "/ui/nosuch.js", want: 404})
	a := e.c.do(t, e.admin, call{listener: admin, method: "GET", path: "/v1/services", want: 401})
	if a.header.Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}
	e.c.do(t, e.admin, call{listener: admin, method: "GET", path: "/v1/queues", token: "wrong-token-0123456789", want: 401})
}

func (e *env) registryCases(t *testing.T) {
	reg := map[string]any{"url": e.upstream.URL, "ttl": "1m", "check": map[string]any{"path": "/", "interval": "5s"},
		"tags": []string{"v1"}, "metadata": map[string]string{"team": "core"}}
	e.a(t, "PUT", "/v1/services/web/instances/web-1", reg, 201)
	e.a(t, "PUT", "/v1/services/web/instances/web-1", reg, 200)
	e.a(t, "PUT", "/v1/services/web/instances/web-2", map[string]any{"url": e.upstream.URL, "weight": 3}, 201)
	if p := e.a(t, "PUT", "/v1/services/web/instances/web-3", map[string]any{"url": "ftp://x"}, 422).json(t); p["field"] != "url" {
		t.Errorf("422 names field %v", p["field"])
	}
	e.bad(t, "PUT", "/v1/services/a%20b/instances/x", map[string]any{"url": e.upstream.URL}, 400)
	e.bad(t, "PUT", "/v1/services/web/instances/web-3", `{"url": `, 400)
	e.bad(t, "PUT", "/v1/services/web/instances/web-3", map[string]any{"url": e.upstream.URL, "colour": "red"}, 400)
	e.c.do(t, e.admin, call{listener: admin, method: "PUT", path: "/v1/services/web/instances/web-3", token: e.token,
		body: []byte("url=x"), header: http.Header{"Content-Type": {"text/plain"}}, want: 415, invalid: true})
	e.bad(t, "PUT", "/v1/services/web/instances/web-3", bytes.Repeat([]byte(" "), 70<<10), 413)

	e.a(t, "GET", "/v1/services", nil, 200)
	if info := e.a(t, "GET", "/v1/services/web", nil, 200).json(t); len(info["instances"].([]any)) != 2 {
		t.Errorf("GET /v1/services/web: %v", info)
	}
	e.a(t, "GET", "/v1/services/nosuch", nil, 404)
	e.a(t, "GET", "/v1/services/web/instances/web-1", nil, 200)
	e.a(t, "GET", "/v1/services/web/instances/web-9", nil, 404)
	e.a(t, "PUT", "/v1/services/web/instances/web-1/heartbeat", nil, 200)
	e.a(t, "PUT", "/v1/services/web/instances/web-9/heartbeat", nil, 404)
	e.a(t, "PUT", "/v1/services/web/instances/web-2/status", map[string]string{"status": "draining"}, 200)
	e.a(t, "PUT", "/v1/services/web/instances/web-2/status", map[string]string{"status": "healthy"}, 200)
	e.bad(t, "PUT", "/v1/services/web/instances/web-2/status", map[string]string{"status": "sleepy"}, 422)
	e.a(t, "PUT", "/v1/services/web/instances/web-9/status", map[string]string{"status": "draining"}, 404)

	e.a(t, "POST", "/admin/register-service", map[string]any{"serviceName": "legacy",
		"instance": map[string]any{"id": "l-1", "url": e.upstream.URL, "weight": 2}}, 200)
	if p := e.bad(t, "POST", "/admin/register-service", map[string]any{"serviceName": "legacy"}, 422).json(t); p["error"] == nil {
		t.Errorf("legacy error without the seed's error member: %v", p)
	}
	e.a(t, "GET", "/v1/watch", nil, 200)
	e.a(t, "GET", "/v1/watch?service=web", nil, 200)
	e.bad(t, "GET", "/v1/watch?service=a%20b", nil, 400)
	e.a(t, "DELETE", "/v1/services/legacy/instances/l-1", nil, 204)
	e.a(t, "DELETE", "/v1/services/legacy/instances/l-1", nil, 404)
}

// eventually polls the gateway until path answers status (the gateway's
// registry cache follows the registry asynchronously).
func (e *env) eventually(t *testing.T, path string, status int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(e.gateway + path)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == status {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s never answered %d (last %v %v)", path, status, resp, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *env) gatewayCases(t *testing.T) {
	e.eventually(t, "/api/web/", 200)
	if a := e.g(t, call{path: "/api/web/users/42?x=1", want: 200}).json(t); a["path"] != "/users/42" || a["query"] != "x=1" {
		t.Errorf("proxied as %v", a)
	}
	e.g(t, call{path: "/api/web", want: 200})
	e.g(t, call{method: "POST", path: "/api/web/echo", body: []byte(`{"a":1}`), want: 200})
	for _, m := range []string{"PUT", "PATCH", "DELETE"} {
		e.g(t, call{method: m, path: "/api/web/things/1", body: []byte(`{}`), want: 200})
	}
	for _, m := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		e.g(t, call{method: m, path: "/api/web", body: []byte(`{}`), want: 200})
	}
	pre := http.Header{"Origin": {"https://ok.example"}, "Access-Control-Request-Method": {"POST"}}
	e.g(t, call{method: "OPTIONS", path: "/api/web/echo", header: pre, want: 204})
	e.g(t, call{method: "OPTIONS", path: "/api/web", header: pre, want: 204})
	e.g(t, call{method: "OPTIONS", path: "/api/web/echo", header: http.Header{"Origin": {"https://evil.example"},
		"Access-Control-Request-Method": {"POST"}}, want: 403})
	e.g(t, call{method: "POST", path: "/api/web/echo", body: bytes.Repeat([]byte("x"), 5000), want: 413})
	e.g(t, call{path: "/api/web/%2e%2e/secret", want: 400})
	t.Run("encoded-traversal", func(t *testing.T) {
		for _, p := range []string{"/api/web/..%2Fsecret", "/api/web/a/..%2f..%2fsecret", "/api/web/..%5Csecret"} {
			e.g(t, call{path: p, want: 400})
		}
	})
	t.Run("unknown-service", func(t *testing.T) {
		if typ := problemType(t, e.g(t, call{path: "/api/nosuch/x", want: 404})); typ != "urn:plexus:problem:unknown-service" {
			t.Errorf("unknown service: type %q", typ)
		}
	})

	// A known service whose only instance drains: 503 no-healthy-instance.
	e.a(t, "PUT", "/v1/services/drained/instances/d-1", map[string]any{"url": e.upstream.URL}, 201)
	e.eventually(t, "/api/drained/", 200)
	e.a(t, "PUT", "/v1/services/drained/instances/d-1/status", map[string]string{"status": "draining"}, 200)
	e.eventually(t, "/api/drained/", 503)
	if typ := problemType(t, e.g(t, call{path: "/api/drained/x", want: 503})); typ != "urn:plexus:problem:no-healthy-instance" {
		t.Errorf("drained service: type %q", typ)
	}
	// An instance nobody listens on: 502.
	e.a(t, "PUT", "/v1/services/dead/instances/x-1", map[string]any{"url": "http://127.0.0.1:1"}, 201)
	e.eventually(t, "/api/dead/", 502)
	e.g(t, call{path: "/api/dead/x", want: 502})
	// An upstream slower than the service's 200ms timeout: 504.
	e.a(t, "PUT", "/v1/services/slow/instances/s-1", map[string]any{"url": e.upstream.URL}, 201)
	e.eventually(t, "/api/slow/", 200)
	e.g(t, call{path: "/api/slow/sleep", want: 504})
	// One request a minute: the second is 429.
	e.a(t, "PUT", "/v1/services/limited/instances/r-1", map[string]any{"url": e.upstream.URL}, 201)
	e.eventually(t, "/api/limited/", 200)
	e.g(t, call{path: "/api/limited/x", want: 429})

	if list := e.a(t, "GET", "/v1/breakers", nil, 200).body; !bytes.Contains(list, []byte(`"service":"web"`)) {
		t.Errorf("breakers: %s", list)
	}
}

func (e *env) queueCases(t *testing.T) {
	e.a(t, "PUT", "/v1/queues/orders", map[string]any{"maxSize": 100, "retryAttempts": 2, "retryDelay": "0s", "visibilityTimeout": "30s"}, 201)
	e.a(t, "PUT", "/v1/queues/orders", map[string]any{"maxSize": 100, "retryAttempts": 2, "retryDelay": "0s"}, 200)
	e.a(t, "PUT", "/v1/queues/jobs", map[string]any{"retryAttempts": 2, "retryDelay": "0s"}, 201)
	e.a(t, "PUT", "/v1/queues/defaults", nil, 201)
	e.bad(t, "PUT", "/v1/queues/jobs", map[string]any{"maxSize": -5}, 422)
	e.bad(t, "PUT", "/v1/queues/bad%20name", nil, 400)
	e.a(t, "GET", "/v1/queues", nil, 200)
	e.a(t, "GET", "/v1/queues/orders", nil, 200)
	if p := e.a(t, "GET", "/v1/queues/nope", nil, 404).json(t); p["queue"] != "nope" {
		t.Errorf("404 without the queue member: %v", p)
	}

	one := e.a(t, "POST", "/v1/queues/orders/messages", map[string]any{"payload": map[string]any{"orderId": 42},
		"priority": 5, "id": "order-42", "headers": map[string]string{"X-Tenant": "acme"}}, 201).json(t)
	if one["id"] != "order-42" {
		t.Errorf("publish: %v", one)
	}
	e.a(t, "POST", "/v1/queues/orders/messages", map[string]any{"messages": []any{
		map[string]any{"payload": "text"}, map[string]any{"payload": 7, "delay": "1h"}}}, 201)
	e.a(t, "POST", "/v1/queues/nope/messages", map[string]any{"payload": 1}, 404)
	e.bad(t, "POST", "/v1/queues/orders/messages", map[string]any{"payload": 1, "priority": 12}, 422)
	e.bad(t, "POST", "/v1/queues/orders/messages", `{"payload": 1,}`, 400)
	t.Run("invalid-utf8", func(t *testing.T) {
		e.bad(t, "POST", "/v1/queues/orders/messages", []byte("{\"payload\":\"a\xffb\"}"), 400)
	})

	got := e.a(t, "POST", "/v1/queues/orders/receive", map[string]any{"max": 1, "wait": "2s", "consumer": "w-1"}, 200).json(t)
	msgs, _ := got["messages"].([]any)
	if len(msgs) != 1 {
		t.Fatalf("receive: %v", got)
	}
	first := msgs[0].(map[string]any)
	if first["id"] != "order-42" {
		t.Errorf("highest priority first: got %v", first["id"])
	}
	fresh := e.a(t, "POST", "/v1/queues/orders/extend", map[string]any{"receipts": []any{first["receipt"]}}, 200).json(t)
	receipt := fresh["receipts"].([]any)[0]
	e.a(t, "POST", "/v1/queues/orders/ack", map[string]any{"receipts": []any{receipt}}, 200)
	e.a(t, "POST", "/v1/queues/orders/ack", map[string]any{"receipts": []string{"forged"}}, 400)
	e.bad(t, "POST", "/v1/queues/orders/ack", map[string]any{"receipts": []string{}}, 422)
	// A receive acks the previous receipts in the same round trip.
	next := e.a(t, "POST", "/v1/queues/orders/receive", nil, 200).json(t)["messages"].([]any) // every default: the "text" message
	if len(next) != 1 {
		t.Fatalf("receive: %v", next)
	}
	e.a(t, "POST", "/v1/queues/orders/receive", map[string]any{"ack": []any{next[0].(map[string]any)["receipt"]}, "wait": "0s"}, 200)
	if st := e.a(t, "GET", "/v1/queues/orders", nil, 200).json(t); st["processedMessages"] != 2.0 {
		t.Errorf("after the receive's ack: processed %v, want 2", st["processedMessages"])
	}
	e.a(t, "POST", "/v1/queues/jobs/receive", map[string]any{"wait": "0s"}, 200)

	// Two failed attempts dead-letter a message of jobs (retryAttempts 2).
	e.a(t, "POST", "/v1/queues/jobs/messages", map[string]any{"payload": "job"}, 201)
	for i := range 2 {
		d := e.a(t, "POST", "/v1/queues/jobs/receive", map[string]any{"wait": "15s"}, 200).json(t)["messages"].([]any)
		if len(d) != 1 {
			t.Fatalf("attempt %d: no delivery", i+1)
		}
		e.a(t, "POST", "/v1/queues/jobs/nack", map[string]any{"receipt": d[0].(map[string]any)["receipt"], "error": "boom"}, 200)
	}
	e.bad(t, "POST", "/v1/queues/jobs/nack", map[string]any{"error": "no receipt"}, 422)
	deadline := time.Now().Add(10 * time.Second)
	for {
		dl := e.a(t, "GET", "/v1/queues/jobs/dead-letters?limit=10", nil, 200).json(t)["messages"].([]any)
		if len(dl) == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.bad(t, "GET", "/v1/queues/jobs/dead-letters?limit=0", nil, 400)
	if n := e.a(t, "POST", "/v1/queues/jobs/dead-letters/redrive", nil, 200).json(t)["redriven"]; n != 1.0 {
		t.Errorf("redriven %v, want 1", n)
	}
	e.a(t, "POST", "/v1/queues/jobs/dead-letters/redrive", map[string]any{"ids": []string{"nosuch"}}, 200)
	e.a(t, "DELETE", "/v1/queues/jobs/dead-letters", nil, 204)
	e.a(t, "DELETE", "/v1/queues/nope/dead-letters", nil, 404)

	t.Run("stale-receipt", func(t *testing.T) {
		// A nacked message goes to the next receiver; the first receipt is stale.
		e.a(t, "PUT", "/v1/queues/race", map[string]any{"retryDelay": "0s"}, 201)
		e.a(t, "POST", "/v1/queues/race/messages", map[string]any{"payload": "job"}, 201)
		a := e.a(t, "POST", "/v1/queues/race/receive", map[string]any{"wait": "2s"}, 200).json(t)["messages"].([]any)[0].(map[string]any)
		e.a(t, "POST", "/v1/queues/race/nack", map[string]any{"receipt": a["receipt"]}, 200)
		if b := e.a(t, "POST", "/v1/queues/race/receive", map[string]any{"wait": "15s"}, 200).json(t)["messages"].([]any); len(b) != 1 {
			t.Fatalf("nacked message not delivered again: %v", b)
		}
		for _, path := range []string{"ack", "extend"} {
			p := e.a(t, "POST", "/v1/queues/race/"+path, map[string]any{"receipts": []any{a["receipt"]}}, 409)
			if typ := problemType(t, p); typ != "urn:plexus:problem:receipt-stale" {
				t.Errorf("%s with a stale receipt: type %q", path, typ)
			}
		}
		e.a(t, "POST", "/v1/queues/race/nack", map[string]any{"receipt": a["receipt"]}, 409)
		// A receive whose ack holds a stale receipt receives nothing.
		e.a(t, "POST", "/v1/queues/race/receive", map[string]any{"ack": []any{a["receipt"]}, "wait": "0s"}, 409)
	})

	e.a(t, "PUT", "/v1/queues/tiny", map[string]any{"maxSize": 1, "overflow": "reject"}, 201)
	e.a(t, "POST", "/v1/queues/tiny/messages", map[string]any{"payload": 1}, 201)
	e.a(t, "POST", "/v1/queues/tiny/messages", map[string]any{"payload": 2}, 507)
	e.a(t, "DELETE", "/v1/queues/tiny", nil, 204)
	e.a(t, "DELETE", "/v1/queues/tiny", nil, 404)
}

func (e *env) eventCases(t *testing.T) {
	created := map[string]any{"expectedVersion": 0, "events": []any{map[string]any{"type": "user.created",
		"data": map[string]any{"name": "Ada"}, "metadata": map[string]any{"by": "test"}}}}
	e.a(t, "POST", "/v1/streams/user-42/events", created, 201)
	p := e.a(t, "POST", "/v1/streams/user-42/events", created, 409).json(t)
	if p["currentVersion"] != 1.0 || p["expectedVersion"] != 0.0 {
		t.Errorf("conflict: %v", p)
	}
	e.a(t, "POST", "/v1/streams/user-42/events", map[string]any{"events": []any{
		map[string]any{"type": "user.login"}, map[string]any{"type": "user.logout", "data": []int{1}}}}, 201)
	e.bad(t, "POST", "/v1/streams/user-42/events", map[string]any{"events": []any{map[string]any{"type": "bad type"}}}, 422)
	e.bad(t, "POST", "/v1/streams/user-42/events", map[string]any{"events": []any{}}, 422)
	e.bad(t, "POST", "/v1/streams/-x/events", created, 400)
	e.bad(t, "POST", "/v1/streams/user-42/events", `{"events": [`, 400)
	t.Run("invalid-utf8", func(t *testing.T) {
		e.bad(t, "POST", "/v1/streams/user-43/events", []byte("{\"events\":[{\"type\":\"t\",\"data\":\"a\xffb\"}]}"), 400)
	})

	e.a(t, "GET", "/v1/streams/user-42", nil, 200)
	e.a(t, "GET", "/v1/streams/user-404", nil, 404)
	if evs := e.a(t, "GET", "/v1/streams/user-42/events?fromVersion=2&limit=10", nil, 200).json(t)["events"].([]any); len(evs) != 2 {
		t.Errorf("read from version 2: %d events", len(evs))
	}
	e.a(t, "GET", "/v1/streams/user-42/events?direction=backward&fromVersion=0", nil, 200)
	e.a(t, "GET", "/v1/streams/user-404/events", nil, 404)
	e.bad(t, "GET", "/v1/streams/user-42/events?direction=sideways", nil, 422)
	e.a(t, "GET", "/v1/events?fromPosition=1&types=user.created,user.login&category=user&limit=10", nil, 200)
	e.a(t, "GET", "/v1/events?since=2020-01-02T15:04:05Z", nil, 200)
	if evs := e.a(t, "GET", "/v1/events?direction=backward&limit=2", nil, 200).json(t)["events"].([]any); len(evs) != 2 ||
		evs[0].(map[string]any)["type"] != "user.logout" {
		t.Errorf("read all backward: %v", evs)
	}
	e.bad(t, "GET", "/v1/events?direction=sideways", nil, 400)
	e.a(t, "GET", "/v1/events?limit=5000", nil, 400) // a page holds at most 1000
	ndjson := http.Header{"Accept": {"application/x-ndjson"}}
	all := e.c.do(t, e.admin, call{listener: admin, method: "GET", path: "/v1/events?limit=5000", token: e.token,
		header: ndjson, want: 200})
	if n := bytes.Count(all.body, []byte("\n")); n != 3 || all.header.Get("Content-Type") != "application/x-ndjson" {
		t.Errorf("NDJSON read-all: %d lines (%s): %s", n, all.header.Get("Content-Type"), all.body)
	}
	e.c.do(t, e.admin, call{listener: admin, method: "GET", path: "/v1/events?direction=backward", token: e.token,
		header: ndjson, want: 400})
	e.bad(t, "GET", "/v1/events?since=yesterday", nil, 400)
	e.a(t, "GET", "/v1/events/subscribe?fromPosition=1", nil, 200)
	e.c.do(t, e.admin, call{listener: admin, method: "GET", path: "/v1/events/subscribe", token: e.token,
		header: http.Header{"Last-Event-ID": {"1"}}, want: 200})
	e.bad(t, "GET", "/v1/events/subscribe?fromPosition=soon", nil, 400)

	e.a(t, "GET", "/v1/streams/user-42/snapshot", nil, 404)
	e.a(t, "PUT", "/v1/streams/user-42/snapshot", map[string]any{"version": 3, "state": map[string]any{"name": "Ada"}}, 200)
	e.a(t, "GET", "/v1/streams/user-42/snapshot", nil, 200)
	e.a(t, "PUT", "/v1/streams/user-404/snapshot", map[string]any{"version": 1, "state": 1}, 404)
	e.a(t, "PUT", "/v1/streams/user-42/snapshot", map[string]any{"version": 9, "state": 1}, 422)
}

// subscriptionCases parks an event: a subscriber group of a second store
// on the node's engine fails on every event.
func (e *env) subscriptionCases(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stop := parkOne(ctx, t, e.node, "mailer", "order-1")
	defer stop()
	e.a(t, "GET", "/v1/subscriptions", nil, 200)
	var parked []any
	deadline := time.Now().Add(15 * time.Second)
	for len(parked) == 0 && time.Now().Before(deadline) {
		parked = e.a(t, "GET", "/v1/subscriptions/mailer/parked?limit=10", nil, 200).json(t)["events"].([]any)
		time.Sleep(100 * time.Millisecond)
	}
	if len(parked) == 0 {
		t.Fatal("no event parked")
	}
	pos := fmt.Sprint(parked[0].(map[string]any)["position"])
	e.bad(t, "GET", "/v1/subscriptions/bad.group/parked", nil, 400)
	e.a(t, "POST", "/v1/subscriptions/mailer/parked/"+pos+"/retry", nil, 202)
	e.a(t, "POST", "/v1/subscriptions/mailer/parked/999999/retry", nil, 404)
	e.a(t, "DELETE", "/v1/subscriptions/mailer/parked/"+pos, nil, 204)
	e.a(t, "DELETE", "/v1/subscriptions/mailer/parked/999999", nil, 404)
	e.a(t, "DELETE", "/v1/subscriptions/mailer/parked/0", nil, 400)
}

func (e *env) traceCases(t *testing.T) {
	const traceID = "5b8efff798038103d269b633813fc60c"
	export := `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"orders"}}]},
	  "scopeSpans":[{"scope":{"name":"contract","version":"1.0"},"spans":[{"traceId":"` + traceID + `","spanId":"eee19b7ec3c1b174","name":"GET /orders","kind":2,
	  "startTimeUnixNano":"1767366245000000000","endTimeUnixNano":"1767366245120000000"}]}]}]}`
	e.a(t, "POST", "/v1/traces", export, 200)
	e.c.do(t, e.admin, call{listener: admin, method: "POST", path: "/v1/traces", token: e.token, body: protoExport(t),
		header: http.Header{"Content-Type": {"application/x-protobuf"}}, want: 200})
	e.c.do(t, e.admin, call{listener: admin, method: "POST", path: "/v1/traces", token: e.token, body: []byte("x"),
		header: http.Header{"Content-Type": {"text/plain"}}, want: 415, invalid: true})
	e.bad(t, "POST", "/v1/traces", `{"resourceSpans": 5}`, 400)
	e.a(t, "GET", "/v1/traces?service=orders&limit=5&minDuration=1ms&errors=false", nil, 200)
	var found []any
	_ = json.Unmarshal(e.a(t, "GET", "/v1/traces?service=orders&operation=GET+/orders&minDuration=100ms&maxDuration=1s"+
		"&from=2026-01-02T15:04:00Z&to=2026-01-02T15:05:00Z", nil, 200).body, &found)
	if len(found) != 1 {
		t.Errorf("trace search found %d traces, want the one exported", len(found))
	}
	_ = json.Unmarshal(e.a(t, "GET", "/v1/traces?service=orders&lookback=1h", nil, 200).body, &found)
	if len(found) != 0 {
		t.Errorf("a trace of 2026-01-02 is within the last hour: %v", found)
	}
	e.bad(t, "GET", "/v1/traces?limit=0", nil, 400)
	e.bad(t, "GET", "/v1/traces?lookback=soon", nil, 400)
	if svcs := e.a(t, "GET", "/v1/traces/services", nil, 200).json(t); !strings.Contains(fmt.Sprint(svcs["services"]), "GET /orders") {
		t.Errorf("trace services: %v", svcs)
	}
	d := e.a(t, "GET", "/v1/traces/"+traceID, nil, 200).json(t)
	if d["traceId"] != traceID {
		t.Errorf("trace: %v", d)
	}
	if sp, _ := d["spans"].([]any); len(sp) != 1 || fmt.Sprint(sp[0].(map[string]any)["scope"]) != "map[name:contract version:1.0]" ||
		sp[0].(map[string]any)["resource"] == nil {
		t.Errorf("span without its resource and scope: %v", d["spans"])
	}
	e.a(t, "GET", "/v1/traces/0123456789abcdef0123456789abcdef", nil, 404)
	e.a(t, "GET", "/v1/traces/xyz", nil, 400)
}

// parkOne appends an event to stream and subscribes group, through a
// store of its own on the node's engine, with a handler that always fails
// once: the event is parked. stop ends the subscription and the store.
func parkOne(ctx context.Context, t *testing.T, n *server.Node, group, stream string) (stop func()) {
	t.Helper()
	store := eventstore.New(n.Engine(), eventstore.Config{})
	if err := store.Start(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := store.Append(ctx, stream, eventstore.AnyVersion, eventstore.Event{Type: "order.placed"})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := store.Subscribe(ctx, group, func(context.Context, eventstore.Envelope) error {
		return errors.New("mail server down")
	}, eventstore.SubscribeOptions{Category: eventstore.Category(stream), FromPosition: res.Position, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = sub.Stop(sctx)
		_ = store.Stop(sctx)
	}
}

// protoExport is an OTLP export request in protobuf with one span.
func protoExport(t *testing.T) []byte {
	t.Helper()
	req := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{{Key: "service.name",
			Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "billing"}}}}},
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{{
			TraceId: bytes.Repeat([]byte{0xab}, 16), SpanId: bytes.Repeat([]byte{0xcd}, 8), Name: "charge",
			StartTimeUnixNano: 1767366245000000000, EndTimeUnixNano: 1767366245050000000,
		}}}},
	}}}
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
