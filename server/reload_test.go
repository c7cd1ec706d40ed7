package server

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plexushq/plexus/gateway"
	"github.com/plexushq/plexus/internal/logtest"
)

func gatewayTimeout(t *testing.T, n *Node) time.Duration {
	t.Helper()
	g, ok := n.gateway.(*gateway.Gateway)
	if !ok {
		t.Fatalf("the node's gateway handler is %T", n.gateway)
	}
	return g.Config().Timeout
}

// TestReloadRejectsTheWholeFile: a file with a valid gateway: change and an
// invalid queues: section was refused ("keeping the running one"), yet the
// new gateway timeout was in force. A rejected file changes nothing, in
// any section.
func TestReloadRejectsTheWholeFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "plexus.yaml")
	writeFile(t, file, "gateway: {timeout: 30s}\nqueues:\n  orders: {maxSize: 100}\n")
	n := startNode(t, Config{ConfigFile: file, AdminToken: "test-token-0123456789"})
	if d := gatewayTimeout(t, n); d != 30*time.Second {
		t.Fatalf("timeout at start %s", d)
	}
	os.WriteFile(file, []byte("gateway: {timeout: 5s}\nqueues:\n  orders: {maxSize: -5}\n"), 0o600)
	if err := n.Reload(); err == nil {
		t.Fatal("a file with an invalid queues: section was accepted")
	}
	if d := gatewayTimeout(t, n); d != 30*time.Second {
		t.Fatalf("the rejected file's gateway timeout %s is in force", d)
	}
	if _, body := get(t, "http://"+n.AdminAddr()+"/v1/queues/orders", n.Token()); !strings.Contains(string(body), `"maxSize":100`) {
		t.Fatalf("the rejected file changed the queue: %s", body)
	}
}

// TestReloadWithoutTheGatewayRole: the file watcher lived in the gateway's
// set-up, so a node without the gateway role never reloaded its queues:.
// The node owns reload: every role reloads.
func TestReloadWithoutTheGatewayRole(t *testing.T) {
	file := filepath.Join(t.TempDir(), "plexus.yaml")
	writeFile(t, file, "queues:\n  a: {}\n")
	n := startNode(t, Config{ConfigFile: file, Roles: []string{RoleControl}, AdminToken: "test-token-0123456789"})
	writeFile(t, file, "queues:\n  a: {}\n  b: {maxSize: 7}\n")
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, body := get(t, "http://"+n.AdminAddr()+"/v1/queues/b", n.Token())
		if resp.StatusCode == http.StatusOK && strings.Contains(string(body), `"maxSize":7`) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the changed file was never applied on a control-only node: %d %s", resp.StatusCode, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReloadGenerationMetricAndLog: a metric, a log line and /health say
// which generation of the file is in force; a rejected file leaves it.
func TestReloadGenerationMetricAndLog(t *testing.T) {
	file := filepath.Join(t.TempDir(), "plexus.yaml")
	writeFile(t, file, "gateway: {timeout: 30s}\n")
	var logs logtest.Buffer
	n := startNode(t, Config{ConfigFile: file, AdminToken: "test-token-0123456789",
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	admin := "http://" + n.AdminAddr()
	waitBody(t, admin+"/metrics", "plexus_config_generation 1")

	os.WriteFile(file, []byte("gateway: {timeout: 20s}\n"), 0o600)
	if err := n.Reload(); err != nil {
		t.Fatal(err)
	}
	waitBody(t, admin+"/metrics", "plexus_config_generation 2")
	if !strings.Contains(logs.String(), `msg="configuration applied"`) || !strings.Contains(logs.String(), "generation=2") {
		t.Fatalf("no log line names the generation applied:\n%s", logs.String())
	}

	os.WriteFile(file, []byte("gateway: {strategy: fastest}\n"), 0o600)
	if err := n.Reload(); err == nil {
		t.Fatal("invalid file accepted")
	}
	waitBody(t, admin+"/metrics", `plexus_config_reloads_total{result="rejected"} 1`)
	if _, body := get(t, admin+"/metrics", ""); !strings.Contains(string(body), "plexus_config_generation 2") {
		t.Fatal("a rejected file changed the generation")
	}
	if !strings.Contains(logs.String(), `msg="configuration rejected"`) || !strings.Contains(logs.String(), "in_force=2") {
		t.Fatalf("no log line says which generation stays:\n%s", logs.String())
	}
	_, body := get(t, admin+"/health", "")
	var h struct {
		Config struct {
			Generation int    `json:"generation"`
			File       string `json:"file"`
			LastError  string `json:"lastError"`
		} `json:"config"`
	}
	if err := json.Unmarshal(body, &h); err != nil || h.Config.Generation != 2 || h.Config.File != file ||
		!strings.Contains(h.Config.LastError, "fastest") {
		t.Fatalf("/health config: %+v (%v) %s", h.Config, err, body)
	}
}
