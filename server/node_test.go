package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startNode runs a node on loopback ports chosen by the kernel (unless
// cfg names an admin address) with a discarded log (unless cfg has one).
func startNode(t *testing.T, cfg Config) *Node {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	cfg.GatewayAddr = "127.0.0.1:0"
	if cfg.AdminAddr == "" {
		cfg.AdminAddr = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return n
}

func get(t *testing.T, url, token string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestNodeTokenGeneratedOnceWithMode0600(t *testing.T) {
	dir := t.TempDir()
	var printed []string
	n := startNode(t, Config{DataDir: dir, PrintToken: func(tok, _ string) { printed = append(printed, tok) }})
	info, err := os.Stat(filepath.Join(dir, TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v, want 0600", info.Mode().Perm())
	}
	if len(printed) != 1 || printed[0] != n.Token() || !strings.HasPrefix(n.Token(), "plx_") {
		t.Fatalf("printed %q, token %q", printed, n.Token())
	}
	// A second node on the same dir reads the same token and prints nothing.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	n2 := startNode(t, Config{DataDir: dir, PrintToken: func(tok, _ string) { printed = append(printed, tok) }})
	if n2.Token() != n.Token() || len(printed) != 1 {
		t.Fatalf("token changed or printed again: %q %q %d", n2.Token(), n.Token(), len(printed))
	}
}

func TestAdminAuth(t *testing.T) {
	n := startNode(t, Config{AdminToken: "0123456789abcdef-test"})
	base := "http://" + n.AdminAddr()
	for _, tc := range []struct {
		name, path, token string
		want              int
	}{
		{"health is public", "/health", "", 200},
		{"ready is public", "/ready", "", 200},
		{"metrics is public", "/metrics", "", 200},
		{"api needs token", "/v1/services", "", 401},
		{"wrong token", "/v1/services", "nope-nope-nope-nope", 401},
		{"right token reaches the mux", "/v1/nothing-here", "0123456789abcdef-test", 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(t, base+tc.path, tc.token)
			if resp.StatusCode != tc.want {
				t.Fatalf("%s: status %d, want %d: %s", tc.path, resp.StatusCode, tc.want, body)
			}
			if tc.want == 401 {
				if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
					t.Fatalf("content type %q", ct)
				}
				var p map[string]any
				if err := json.Unmarshal(body, &p); err != nil || p["status"] != float64(401) {
					t.Fatalf("problem body %s", body)
				}
			}
		})
	}
	_, body := get(t, base+"/metrics", "")
	if !strings.Contains(string(body), "plexus_build_info") || !strings.Contains(string(body), "go_goroutines") {
		t.Fatalf("metrics lack plexus_build_info or Go runtime metrics")
	}
}

func TestShortTokenRejected(t *testing.T) {
	n, err := New(Config{AdminToken: "short", DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		GatewayAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err == nil {
		t.Fatal("a 5-character admin token was accepted")
	}
}

func TestParseRoles(t *testing.T) {
	if r, err := ParseRoles("gateway, checker,gateway"); err != nil || len(r) != 2 {
		t.Fatalf("%v %v", r, err)
	}
	if _, err := ParseRoles("gateway,bogus"); err == nil {
		t.Fatal("unknown role accepted")
	}
	if _, err := ParseRoles(""); err == nil {
		t.Fatal("empty roles accepted")
	}
}

func TestParseFileStrict(t *testing.T) {
	var fc FileConfig
	if err := ParseFile([]byte("gateway: {timeout: 5s}\nqueues: {}\n"), &fc); err != nil {
		t.Fatal(err)
	}
	if err := ParseFile([]byte("gatway: {}\n"), &FileConfig{}); err == nil {
		t.Fatal("unknown top-level key accepted")
	}
	var dst struct {
		Timeout string `yaml:"timeout"`
	}
	if err := DecodeSection(&fc.Gateway, &dst); err != nil || dst.Timeout != "5s" {
		t.Fatalf("%v %q", err, dst.Timeout)
	}
	var strict struct{}
	if err := DecodeSection(&fc.Gateway, &strict); err == nil {
		t.Fatal("unknown section key accepted")
	}
}

func TestDashboardServedWithoutToken(t *testing.T) {
	n := startNode(t, Config{AdminToken: "0123456789abcdef-test"})
	base := "http://" + n.AdminAddr()
	for path, want := range map[string]string{"/ui/": "<title>Plexus</title>", "/ui/app.js": "sessionStorage", "/ui/style.css": "--accent"} {
		resp, body := get(t, base+path, "")
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Fatalf("%s: %d, body lacks %q", path, resp.StatusCode, want)
		}
		if resp.Header.Get("Content-Security-Policy") == "" {
			t.Fatalf("%s: no Content-Security-Policy", path)
		}
	}
}
