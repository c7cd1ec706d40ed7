package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestGatewayRoleWithRegistryAndFileReload runs a whole node: an instance
// registered through the admin API is reachable through the gateway, a
// route from the configuration file works, an invalid file is rejected with
// the old configuration kept, and a valid change applies without a restart.
func TestGatewayRoleWithRegistryAndFileReload(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "path="+r.URL.Path)
	}))
	t.Cleanup(be.Close)
	dir := t.TempDir()
	file := filepath.Join(dir, "plexus.yaml")
	writeFile(t, file, "gateway:\n  routes:\n    - {match: {pathPrefix: /u}, service: svc, stripPrefix: true}\n")
	n := startNode(t, Config{ConfigFile: file, AdminToken: "test-token-0123456789"})
	admin, gw := "http://"+n.AdminAddr(), "http://"+n.GatewayAddr()

	req, _ := http.NewRequest(http.MethodPut, admin+"/v1/services/svc/instances/i1", strings.NewReader(`{"url":"`+be.URL+`"}`))
	req.Header.Set("Authorization", "Bearer "+n.Token())
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode/100 != 2 {
		t.Fatalf("register: %v %v", err, resp)
	}
	resp.Body.Close()

	waitBody(t, gw+"/api/svc/a/b?x=1", "path=/a/b")
	waitBody(t, gw+"/u/c", "path=/c")

	writeFile(t, file, "gateway:\n  strategy: fastest\n")
	waitBody(t, admin+"/metrics", `plexus_config_reloads_total{result="rejected"} 1`)
	if _, body := get(t, gw+"/u/c", ""); body == nil || string(body) != "path=/c" {
		t.Fatalf("after an invalid file the old route answers %q", body)
	}

	writeFile(t, file, "gateway:\n  routes:\n    - {match: {pathPrefix: /v}, service: svc}\n")
	waitBody(t, gw+"/v/d", "path=/v/d")
	if r, _ := get(t, gw+"/u/c", ""); r.StatusCode != http.StatusNotFound {
		t.Errorf("old route still answers %d after the change", r.StatusCode)
	}
	if r, body := get(t, admin+"/v1/breakers", n.Token()); r.StatusCode != 200 || !strings.Contains(string(body), `"service":"svc"`) {
		t.Errorf("GET /v1/breakers: %d %s", r.StatusCode, body)
	}
	if r, body := get(t, gw+"/health", ""); r.StatusCode != 200 || !strings.Contains(string(body), `"svc":{"instances":1,"healthy":1}`) {
		t.Errorf("gateway /health: %d %s", r.StatusCode, body)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil { // as editors do
		t.Fatal(err)
	}
}

// waitBody polls url until its body contains want (the registry cache and
// the file watch are asynchronous).
func waitBody(t *testing.T, url, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if last = string(b); strings.Contains(last, want) {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never contained %q; last %q", url, want, last)
}
