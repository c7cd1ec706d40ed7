package server

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// adminRaw sends raw bytes to the admin listener and returns the
// connection and a reader of its answers.
func adminRaw(t *testing.T, n *Node, raw string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", n.AdminAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	return c, bufio.NewReader(c)
}

// readClosing reads one answer (noting a 100 Continue before it) and
// checks that the connection is then closed, all within generous bounds.
func readClosing(t *testing.T, c net.Conn, br *bufio.Reader) (*http.Response, bool) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	sawContinue := false
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("no answer within 20s: %v", err)
		}
		if resp.StatusCode == http.StatusContinue {
			sawContinue = true
			continue
		}
		_, _ = io.ReadAll(resp.Body)
		if _, err := br.ReadByte(); err == nil || !resp.Close {
			t.Fatalf("status %d: the connection stays open (Connection: close %v)", resp.StatusCode, resp.Close)
		}
		return resp, sawContinue
	}
}

// An unauthenticated request with a body that never completes is answered
// 401 at once — no 100 Continue, nothing read, connection closed.
func TestAdminRefusesPartialBodyAtOnce(t *testing.T) {
	n := startNode(t, Config{AdminToken: testToken, ClientBodyTimeout: time.Hour})
	for _, extra := range []string{"", "Expect: 100-continue\r\n"} {
		c, br := adminRaw(t, n, "PUT /v1/services/s/instances/i HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
			"Content-Length: 1000\r\n"+extra+"\r\n{\"url\":")
		resp, cont := readClosing(t, c, br)
		if resp.StatusCode != 401 || cont {
			t.Fatalf("%q: status %d, 100 Continue %v; want 401 without 100 Continue", extra, resp.StatusCode, cont)
		}
	}
}

// An authenticated request whose body stalls ends after the body idle
// timeout instead of holding the connection, on both admin servers.
func TestAdminStalledBodyTimesOut(t *testing.T) {
	for _, srv := range []string{GatewayServerH1, GatewayServerNetHTTP} {
		t.Run(strings.ReplaceAll(srv, "/", "-"), func(t *testing.T) {
			n := startNode(t, Config{AdminToken: testToken, ClientBodyTimeout: 300 * time.Millisecond, AdminServer: srv})
			c, br := adminRaw(t, n, "PUT /v1/services/s/instances/i HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+testToken+
				"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"url\":")
			if resp, _ := readClosing(t, c, br); resp.StatusCode < 400 || resp.StatusCode >= 500 {
				t.Fatalf("status %d, want a 4xx for the stalled body", resp.StatusCode)
			}
		})
	}
}

// --admin-server takes h1 or net/http only.
func TestConfigAdminServer(t *testing.T) {
	for srv, ok := range map[string]bool{"": true, GatewayServerH1: true, GatewayServerNetHTTP: true, "fasthttp": false} {
		cfg := Config{DataDir: t.TempDir(), AdminServer: srv}
		if err := cfg.Validate(); (err == nil) != ok {
			t.Errorf("AdminServer %q: err %v, want ok %v", srv, err, ok)
		}
	}
}

// The Bearer scheme is case-insensitive (RFC 9110 §11.1); the token is not.
func TestAdminBearerSchemeCaseInsensitive(t *testing.T) {
	n := startNode(t, Config{AdminToken: testToken})
	for value, want := range map[string]int{
		"Bearer " + testToken:                  200,
		"bearer " + testToken:                  200,
		"BEARER  " + testToken:                 200,
		"bEaReR " + testToken + " ":            200,
		"Bearer " + strings.ToUpper(testToken): 401,
		"Basic " + testToken:                   401,
		"Bearer":                               401,
		testToken:                              401,
	} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+n.AdminAddr()+"/v1/services", nil)
		req.Header.Set("Authorization", value)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Authorization %q: status %d, want %d", value, resp.StatusCode, want)
		}
	}
}

// An admin listener other hosts can reach, without TLS, is warned about
// at start; a loopback one is not.
func TestAdminNonLoopbackWarns(t *testing.T) {
	for addr, warn := range map[string]bool{"127.0.0.1:0": false, "0.0.0.0:0": true} {
		logFile := filepath.Join(t.TempDir(), "node.log")
		f, err := os.Create(logFile)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = f.Close() })
		startNode(t, Config{AdminToken: testToken, AdminAddr: addr, Logger: slog.New(slog.NewTextHandler(f, nil))})
		logs, _ := os.ReadFile(logFile)
		got := strings.Contains(string(logs), "level=WARN") && strings.Contains(string(logs), "admin listener is reachable from other hosts")
		if got != warn {
			t.Errorf("admin on %s: warned %v, want %v\n%s", addr, got, warn, logs)
		}
	}
}
