package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plexushq/plexus/internal/gatewaytest"
	"github.com/plexushq/plexus/internal/httpx"
)

// TestGatewayAdversarialBinary runs the adversarial suite against the
// real plexus binary, on each of its cleartext HTTP/1.1 servers, plus
// what only a real deployment shows: Python's http.server as the
// upstream (it resolves ..%2F itself and serves what it points at), and
// the admin listener's token check.
func TestGatewayAdversarialBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	for _, srv := range []string{"h1", "net/http"} {
		t.Run(strings.ReplaceAll(srv, "/", "-"), func(t *testing.T) { adversarialBinary(t, bin, srv) })
	}
}

func adversarialBinary(t *testing.T, bin, server string) {
	const token = "0123456789abcdef-adversarial"
	admin, gw := freeAddr(t), freeAddr(t)
	cfgFile := filepath.Join(t.TempDir(), "plexus.yaml")
	if err := os.WriteFile(cfgFile, []byte("gateway:\n"+indent(gatewaytest.Config)), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	up := exec.Command(bin, "up", "--data-dir", t.TempDir(), "--admin-addr", admin, "--gateway-addr", gw,
		"--config", cfgFile, "--client-body-timeout", "1s", "--client-header-timeout", "2s", "--gateway-server", server)
	up.Env = append(os.Environ(), "PLEXUS_ADMIN_TOKEN="+token)
	up.Stderr = &stderr
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = up.Process.Kill(); _, _ = up.Process.Wait() })
	waitHTTP(t, "http://"+admin+"/health", &stderr)

	register := func(t testing.TB, service string, urls ...string) {
		for i, u := range urls {
			body := fmt.Sprintf(`{"url":%q,"ttl":"10m","check":{"interval":"1m"}}`, u)
			req, _ := httpx.NewJSONRequest(context.Background(), http.MethodPut,
				fmt.Sprintf("http://%s/v1/services/%s/instances/%s-%d", admin, service, service, i), token, nil)
			req.Body, req.ContentLength = io.NopCloser(strings.NewReader(body)), int64(len(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				t.Fatalf("register %s: %d", u, resp.StatusCode)
			}
		}
	}
	t.Run("suite", func(t *testing.T) {
		gatewaytest.Run(t, gatewaytest.Target{BaseURL: "http://" + gw, Register: register,
			BodyIdleTimeout: time.Second, ReadHeaderTimeout: 2 * time.Second})
	})
	t.Run("python-upstream-escape", func(t *testing.T) { pythonEscape(t, gw, register) })
	t.Run("admin", func(t *testing.T) { adminChecks(t, admin, token) })
}

// pythonEscape registers Python's http.server, serving a directory with a
// public/ part, as an instance with base path /public, and tries to read
// the file beside public/ through the gateway.
func pythonEscape(t *testing.T, gw string, register func(testing.TB, string, ...string)) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 is needed as a real upstream: ", err)
	}
	dir := t.TempDir()
	for name, content := range map[string]string{"secret.txt": "adv-top-secret", "public/ok.txt": "adv-public", "public/health": "ok"} {
		_ = os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	var pyErr bytes.Buffer
	py := exec.Command(python, "-m", "http.server", "--bind", "127.0.0.1", "--directory", dir, port)
	py.Stderr = &pyErr
	if err := py.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = py.Process.Kill(); _, _ = py.Process.Wait() })
	waitHTTP(t, "http://"+addr+"/public/ok.txt", &pyErr)
	if got := fetch(t, "http://"+addr+"/public/..%2Fsecret.txt"); !strings.Contains(got, "adv-top-secret") {
		t.Fatalf("python no longer resolves ..%%2F by itself (%q): this check proves nothing", got)
	}
	register(t, "adv-python", "http://"+addr+"/public")
	waitHTTP(t, "http://"+gw+"/api/adv-python/ok.txt", &pyErr)
	for _, p := range gatewaytest.Escapes {
		req, _ := http.NewRequest(http.MethodGet, "http://"+gw+"/api/adv-python/x", nil)
		req.URL.Opaque = "/api/adv-python/" + strings.ReplaceAll(p, "adv-secret", "secret.txt")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			continue // refused by the client library itself
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), "adv-top-secret") || resp.StatusCode != 400 {
			t.Errorf("GET %s: status %d %q; want 400 and nothing from outside /public", req.URL.Opaque, resp.StatusCode, b)
		}
	}
}

// adminChecks: the Bearer scheme in any case, and an unauthenticated
// partial body answered at once.
func adminChecks(t *testing.T, admin, token string) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+admin+"/v1/services", nil)
	req.Header.Set("Authorization", "bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("lower-case bearer: %d", resp.StatusCode)
	}
	c, err := net.Dial("tcp", admin)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "PUT /v1/services/s/instances/i HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n{")
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	b, _ := io.ReadAll(c)
	if !strings.HasPrefix(string(b), "HTTP/1.1 401") {
		t.Errorf("unauthenticated partial body: %q, want 401 at once and the connection closed", b)
	}
}

// waitHTTP waits until url answers 200.
func waitHTTP(t *testing.T, url string, log *bytes.Buffer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered 200:\n%s", url, log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func fetch(t *testing.T, rawURL string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, rawURL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func indent(s string) string {
	var out strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		out.WriteString("  " + l + "\n")
	}
	return out.String()
}
