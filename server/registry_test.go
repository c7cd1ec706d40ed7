package server

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plexushq/plexus/registry"
)

const testToken = "0123456789abcdef-registry"

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// sseReader reads "event:"/"data:" pairs from a watch stream.
type sseReader struct{ rd *bufio.Reader }

func (s sseReader) next(t *testing.T) (string, string) {
	t.Helper()
	var name, data string
	for {
		line, err := s.rd.ReadString('\n')
		if err != nil {
			t.Fatalf("watch stream: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "" && name != "":
			return name, data
		case strings.HasPrefix(line, "event: "):
			name = line[7:]
		case strings.HasPrefix(line, "data: "):
			data = line[6:]
		}
	}
}

// Two nodes on one engine: node A exposes its embedded engine, node B
// connects to it. A registration through A's API shows up in B's watch,
// B's cache and B's /health.
func TestRegistryTwoNodesShareOneEngine(t *testing.T) {
	natsAddr := freePort(t)
	a := startNode(t, Config{Roles: []string{RoleControl, RoleChecker}, AdminToken: testToken, NATSListen: natsAddr,
		NATSAuth: NATSAuth{Token: testToken}})
	b := startNode(t, Config{Roles: []string{RoleControl, RoleGateway}, AdminToken: testToken, NATS: []string{"nats://" + natsAddr},
		NATSAuth: NATSAuth{Token: testToken}})
	if b.Engine().Embedded() {
		t.Fatal("node B runs its own engine")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+b.AdminAddr()+"/v1/watch", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sse := sseReader{bufio.NewReader(resp.Body)}
	if name, data := sse.next(t); name != "snapshot" || data != `{"instances":[]}` {
		t.Fatalf("first event %s %s", name, data)
	}
	clA, err := registry.NewClient("http://"+a.AdminAddr(), testToken, registry.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer clA.Close()

	var lat []time.Duration
	for i := range 20 {
		id := "i" + string(rune('a'+i))
		start := time.Now()
		if _, _, err := clA.Register(ctx, "orders", id, registry.Registration{URL: "http://127.0.0.1:1"}); err != nil {
			t.Fatal(err)
		}
		// Skip the checker's writes about earlier instances.
		for {
			name, data := sse.next(t)
			var ev registry.Event
			if err := json.Unmarshal([]byte(data), &ev); name != "put" || err != nil || ev.Service != "orders" {
				t.Fatalf("event %s %s", name, data)
			}
			if ev.ID == id {
				break
			}
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	t.Logf("registration on node A -> watch event on node B (PUT round trip included), 20 runs: min %s, median %s, max %s",
		lat[0], lat[len(lat)/2], lat[len(lat)-1])

	if err := clA.Deregister(ctx, "orders", "ia"); err != nil {
		t.Fatal(err)
	}
	for {
		name, data := sse.next(t)
		if name == "delete" {
			if !strings.Contains(data, `"id":"ia"`) {
				t.Fatalf("delete event %s", data)
			}
			break
		}
	}
	// B's KV-fed cache (what its gateway uses) and /health agree.
	deadline := time.Now().Add(15 * time.Second)
	for s := b.regCache.Service("orders"); s == nil || len(s.Instances) != 19; s = b.regCache.Service("orders") {
		if time.Now().After(deadline) {
			t.Fatalf("node B cache: %+v", s)
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, body := get(t, "http://"+b.AdminAddr()+"/health", "")
	var h struct {
		Services map[string]struct{ Instances, Healthy int } `json:"services"`
	}
	if err := json.Unmarshal(body, &h); err != nil || h.Services["orders"].Instances != 19 {
		t.Fatalf("health %s", body)
	}
	_, body = get(t, "http://"+b.AdminAddr()+"/metrics", "")
	if !strings.Contains(string(body), `plexus_registry_instances{service="orders",status="healthy"}`) {
		t.Fatalf("metrics lack the instance gauge")
	}
}

// A registration survives a restart of the node on the same data dir.
func TestRegistryNodeRestartKeepsRegistrations(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, Config{Roles: []string{RoleControl}, AdminToken: testToken, DataDir: dir})
	cl, _ := registry.NewClient("http://"+n.AdminAddr(), testToken, registry.ClientConfig{})
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, _, err := cl.Register(ctx, "users", "u1", registry.Registration{URL: "http://127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	if err := n.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	n2 := startNode(t, Config{Roles: []string{RoleControl}, AdminToken: testToken, DataDir: dir})
	if s := n2.regCache.Service("users"); s == nil || len(s.Instances) != 1 || s.Instances[0].ID != "u1" {
		t.Fatalf("after restart the cache holds %+v", s)
	}
	resp, body := get(t, "http://"+n2.AdminAddr()+"/v1/services/users", testToken)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"id":"u1"`) {
		t.Fatalf("after restart: %d %s", resp.StatusCode, body)
	}
	resp, _ = get(t, "http://"+n2.AdminAddr()+"/v1/services/users", "")
	if resp.StatusCode != 401 {
		t.Fatalf("registry API without token: %d", resp.StatusCode)
	}
}

// An open watch stream does not hold up a graceful stop.
func TestRegistryWatchEndsOnShutdown(t *testing.T) {
	n := startNode(t, Config{Roles: []string{RoleControl}, AdminToken: testToken})
	req, _ := http.NewRequest("GET", "http://"+n.AdminAddr()+"/v1/watch", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sse := sseReader{bufio.NewReader(resp.Body)}
	if name, _ := sse.next(t); name != "snapshot" {
		t.Fatalf("first event %q", name)
	}
	// A watch that held the stop up would keep the listener from draining
	// until ctx ends, and Stop would report that; it must drain by itself.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Stop(ctx); err != nil || ctx.Err() != nil {
		t.Fatalf("stop with a watch open: %v (deadline: %v)", err, ctx.Err())
	}
	if _, err := sse.rd.ReadString('\n'); err == nil {
		t.Fatal("watch stream still open after stop")
	}
}
