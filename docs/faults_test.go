package docs_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/plexushq/plexus/server"
)

// TestContractEngineDown: with the engine gone, every API that needs it
// answers 503 with Retry-After in the header and the body, as the spec's
// Unavailable answer says.
func TestContractEngineDown(t *testing.T) {
	c := loadContract(t)
	const token = "contract-engine-down-0123456789"
	n, err := server.New(server.Config{AdminToken: token, DataDir: t.TempDir(), AdminAddr: "127.0.0.1:0",
		GatewayAddr: "127.0.0.1:0", Roles: []string{server.RoleControl},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), PrintToken: func(string, string) {}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = n.Stop(sctx) // the engine connection is closed on purpose: errors expected
	})
	base := "http://" + n.AdminAddr()
	put := func(path, body string) call {
		return call{listener: admin, method: "PUT", path: path, token: token, body: []byte(body), want: 503}
	}
	ok := put("/v1/queues/orders", `{}`) // a queue to publish to once the engine is gone
	ok.want = 201
	c.do(t, base, ok)
	n.Engine().Conn().Close()
	for _, k := range []call{
		{listener: admin, method: "GET", path: "/v1/services", token: token, want: 503},
		put("/v1/services/web/instances/w-1", `{"url":"http://127.0.0.1:9"}`),
		{listener: admin, method: "GET", path: "/v1/queues", token: token, want: 503},
		{listener: admin, method: "POST", path: "/v1/queues/orders/messages", token: token, body: []byte(`{"payload":1}`), want: 503},
		{listener: admin, method: "POST", path: "/v1/streams/user-1/events", token: token,
			body: []byte(`{"events":[{"type":"user.created"}]}`), want: 503},
		{listener: admin, method: "GET", path: "/v1/events", token: token, want: 503},
	} {
		t.Run(k.method+" "+k.path, func(t *testing.T) {
			a := c.do(t, base, k)
			if a.header.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After: %s", clip(a.body))
			}
		})
	}
}

// TestContractBodyStall: a client that sends part of a body and then
// nothing gets 408 request-timeout once the body timeout passes, from
// both listeners. The node's body timeout (--client-body-timeout) is 1s
// here instead of the 60s default.
func TestContractBodyStall(t *testing.T) {
	t.Parallel()
	e := startEnv(t, func(c *server.Config) { c.ClientBodyTimeout = time.Second })
	e.a(t, "PUT", "/v1/services/web/instances/web-1", map[string]any{"url": e.upstream.URL}, 201)
	e.eventually(t, "/api/web/", 200)
	for _, tc := range []struct{ listener, addr, path, auth string }{
		{gateway, e.node.GatewayAddr(), "/api/web/upload", ""},
		{admin, e.node.AdminAddr(), "/v1/queues/stall/messages", "Authorization: Bearer " + e.token + "\r\n"},
	} {
		t.Run(tc.listener, func(t *testing.T) {
			t.Parallel()
			conn, err := net.Dial("tcp", tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(60 * time.Second)) // a generous bound for the 1s timeout
			fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"pay", tc.path, tc.auth)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("no answer to a stalled body: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), "request-timeout") {
				t.Errorf("stalled body: %d %s", resp.StatusCode, body)
			}
		})
	}
}
