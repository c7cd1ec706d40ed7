package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/plexushq/plexus/internal/nodetest"
	"github.com/plexushq/plexus/server"
)

// TestPublishRetriesOnce: during a failover a node answers 503 with a
// retry hint, or stores a message and the answer is lost. `queue publish`
// retries by itself with the same message id (generated when not given),
// so each message is stored exactly once.
func TestPublishRetriesOnce(t *testing.T) {
	n := nodetest.Start(t, server.Config{AdminToken: "queue-cli-token-0123456789", Roles: []string{server.RoleControl}})
	target, _ := url.Parse("http://" + n.AdminAddr())
	rp := httputil.NewSingleHostReverseProxy(target)
	var spoil, publishes atomic.Int32
	spoil.Store(4)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/messages") {
			rp.ServeHTTP(w, r)
			return
		}
		k := publishes.Add(1)
		if spoil.Add(-1) < 0 {
			rp.ServeHTTP(w, r)
			return
		}
		if k%2 == 0 { // stored, answer lost
			rp.ServeHTTP(httptest.NewRecorder(), r)
		}
		w.Header().Set("Content-Type", "application/problem+json")
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"type":"urn:plexus:problem:engine-unavailable","title":"Service Unavailable","status":503,"retryAfter":1}`)
	}))
	defer proxy.Close()
	g := []string{"--admin-url", proxy.URL, "--admin-token", n.Token()}
	if _, err := runCLI(t, append([]string{"queue", "create", "jobs"}, g...)...); err != nil {
		t.Fatal(err)
	}
	for _, payload := range []string{`{"n":1}`, `{"n":2}`} {
		if out, err := runCLI(t, append([]string{"queue", "publish", "jobs", payload}, g...)...); err != nil {
			t.Fatalf("publish through a failover: %v %s", err, out)
		}
	}
	out, err := runCLI(t, append([]string{"queue", "stats", "jobs", "-o", "json"}, g...)...)
	var info struct {
		QueueSize int `json:"queueSize"`
	}
	if err != nil || json.Unmarshal([]byte(out), &info) != nil || info.QueueSize != 2 {
		t.Fatalf("queue holds %d messages after 2 publishes (%v %s)", info.QueueSize, err, out)
	}
	if publishes.Load() < 5 {
		t.Fatalf("%d publish attempts: the failover was not hit", publishes.Load())
	}
}
