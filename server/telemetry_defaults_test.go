package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plexushq/plexus/telemetry"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "plexus.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitChecks registers an instance checked every 100ms and waits until the
// checker ran at least n checks (read from /metrics).
func waitChecks(t *testing.T, n *Node, count int) {
	t.Helper()
	be := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(be.Close)
	base := "http://" + n.AdminAddr()
	req, _ := http.NewRequest("PUT", base+"/v1/services/web/instances/web-1",
		strings.NewReader(fmt.Sprintf(`{"url":%q,"check":{"path":"/health","interval":"100ms"}}`, be.URL)))
	req.Header.Set("Authorization", "Bearer "+n.Token())
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode >= 300 {
		t.Fatalf("register: %v %v", err, resp)
	}
	resp.Body.Close()
	want := fmt.Sprintf(`plexus_registry_checks_total{result="pass"} %d`, count)
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, body := get(t, base+"/metrics", "")
		if strings.Contains(string(body), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the checker did not reach %d checks:\n%s", count, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func traceCount(t *testing.T, n *Node, query string) int {
	t.Helper()
	resp, body := get(t, "http://"+n.AdminAddr()+"/v1/traces?limit=1000&"+query, n.Token())
	var list []telemetry.TraceSummary
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &list) != nil {
		t.Fatalf("GET /v1/traces: %d %s", resp.StatusCode, body)
	}
	return len(list)
}

// TestHealthChecksNotTracedByDefault: active checks leave the trace store
// to user traffic unless telemetry.traceHealthChecks turns them on.
func TestHealthChecksNotTracedByDefault(t *testing.T) {
	n := startNode(t, Config{AdminToken: "0123456789abcdef-checks", ConfigFile: writeConfig(t, "telemetry:\n  sampleRatio: 1\n")})
	waitChecks(t, n, 5)
	if c := traceCount(t, n, "operation=registry.check"); c != 0 {
		t.Errorf("%d check traces stored by default", c)
	}

	on := startNode(t, Config{AdminToken: "0123456789abcdef-checks",
		ConfigFile: writeConfig(t, "telemetry:\n  sampleRatio: 1\n  traceHealthChecks: true\n")})
	waitChecks(t, on, 5)
	if c := traceCount(t, on, "operation=registry.check"); c < 5 {
		t.Errorf("%d check traces stored with traceHealthChecks, want at least 5", c)
	}
}

// TestDefaultSampler: without a sampleRatio a node samples about a tenth
// of new traces (parent-based ratio) and always follows a sampled parent.
func TestDefaultSampler(t *testing.T) {
	n := startNode(t, Config{AdminToken: "0123456789abcdef-sample", Roles: []string{RoleControl}})
	tr := n.tracer.Tracer("t")
	sampled := 0
	const roots = 1000
	for range roots {
		_, sp := tr.Start(context.Background(), "root")
		if sp.SpanContext().IsSampled() {
			sampled++
		}
		sp.End()
	}
	// Binomial(1000, 0.1): mean 100, standard deviation 9.5; the bounds are
	// more than 6 deviations away.
	if sampled < 40 || sampled > 160 {
		t.Errorf("%d of %d new traces sampled, want about %v", sampled, roots, telemetry.DefaultSampleRatio*roots)
	}

	none := startNode(t, Config{AdminToken: "0123456789abcdef-sample", Roles: []string{RoleControl},
		ConfigFile: writeConfig(t, "telemetry:\n  sampleRatio: 0\n")})
	_, sp := none.tracer.Tracer("t").Start(context.Background(), "root")
	if sp.SpanContext().IsSampled() {
		t.Error("sampleRatio 0 sampled a new trace")
	}
	sp.End()
}

// TestMetricsHistoryEndpoint: GET /v1/metrics/history needs the token and
// answers the sampled columns.
func TestMetricsHistoryEndpoint(t *testing.T) {
	n := startNode(t, Config{AdminToken: "0123456789abcdef-history",
		ConfigFile: writeConfig(t, "telemetry:\n  historyInterval: 100ms\n")})
	url := "http://" + n.AdminAddr() + "/v1/metrics/history"
	if resp, _ := get(t, url, ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("history without token: %d", resp.StatusCode)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, body := get(t, url, n.Token())
		var h telemetry.HistoryAnswer
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &h) != nil {
			t.Fatalf("history: %d %s", resp.StatusCode, body)
		}
		if len(h.Times) >= 3 && len(h.Events.LastPosition) == len(h.Times) && h.Interval == 100*time.Millisecond {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("history did not fill: %s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTelemetryConfigRejected: bad telemetry values stop the node from
// starting, with the key named.
func TestTelemetryConfigRejected(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"telemetry:\n  sampleRatio: 1.5\n", "sampleRatio"},
		{"telemetry:\n  sampleRatio: -0.5\n", "sampleRatio"},
		{"telemetry:\n  historyInterval: 10ms\n", "historyInterval"},
	} {
		n, err := New(Config{DataDir: t.TempDir(), AdminAddr: "127.0.0.1:0", GatewayAddr: "127.0.0.1:0",
			AdminToken: "0123456789abcdef-bad", ConfigFile: writeConfig(t, tc.body)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err = n.Start(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: start error %v, want one naming %s", tc.body, err, tc.want)
			_ = n.Stop(context.Background())
		}
	}
}
