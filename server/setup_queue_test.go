package server

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestQueuesSectionCreatesQueuesAtStart(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "plexus.yaml")
	yaml := "queues:\n  orders: {maxSize: 10000, retryAttempts: 5, retryDelay: 2s, ttl: 24h}\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, Config{ConfigFile: file, Roles: []string{RoleControl}})
	resp, body := get(t, "http://"+n.AdminAddr()+"/v1/queues/orders", n.Token())
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var info struct {
		Config struct {
			MaxSize       int    `json:"maxSize"`
			RetryAttempts int    `json:"retryAttempts"`
			RetryDelay    string `json:"retryDelay"`
			TTL           string `json:"ttl"`
		} `json:"config"`
	}
	if err := json.Unmarshal(body, &info); err != nil {
		t.Fatal(err)
	}
	if c := info.Config; c.MaxSize != 10000 || c.RetryAttempts != 5 || c.RetryDelay != "2s" || c.TTL != "24h0m0s" {
		t.Fatalf("config %+v", c)
	}
	// A reload with a bad entry changes nothing; a good one applies.
	if err := os.WriteFile(file, []byte("queues:\n  orders: {maxSize: -5}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := n.Reload(); err == nil {
		t.Fatal("invalid queues section accepted")
	}
	if err := os.WriteFile(file, []byte("queues:\n  orders: {maxSize: 7}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := n.Reload(); err != nil {
		t.Fatal(err)
	}
	_, body = get(t, "http://"+n.AdminAddr()+"/v1/queues/orders", n.Token())
	if !strings.Contains(string(body), `"maxSize":7`) {
		t.Fatalf("after reload %s", body)
	}
}

func TestQueuesSectionUnknownKeyRefusesStart(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "plexus.yaml")
	if err := os.WriteFile(file, []byte("queues:\n  orders: {maxsize: 1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{ConfigFile: file, DataDir: dir, Roles: []string{RoleControl}, AdminAddr: "127.0.0.1:0"}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.Start(ctx); err == nil || !strings.Contains(err.Error(), "maxsize") {
		_ = n.Stop(ctx)
		t.Fatalf("start: %v", err)
	}
}

// TestQueuesSectionRetryDelayZero: "retryDelay: 0s" in the file means
// retry at once, not the 5s default.
func TestQueuesSectionRetryDelayZero(t *testing.T) {
	file := filepath.Join(t.TempDir(), "plexus.yaml")
	if err := os.WriteFile(file, []byte("queues:\n  now: {retryDelay: 0s}\n  dflt: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, Config{ConfigFile: file, Roles: []string{RoleControl}})
	for q, want := range map[string]string{"now": `"retryDelay":"0s"`, "dflt": `"retryDelay":"5s"`} {
		resp, body := get(t, "http://"+n.AdminAddr()+"/v1/queues/"+q, n.Token())
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Fatalf("%s: %d %s, want %s", q, resp.StatusCode, body, want)
		}
	}
}
