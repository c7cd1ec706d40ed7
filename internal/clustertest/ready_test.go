package clustertest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/plexushq/plexus/internal/clustertest"
	"github.com/plexushq/plexus/internal/nodetest"
	"github.com/plexushq/plexus/server"
)

const token = "cluster-test-admin-token"

// clusterNode runs a Plexus node with roles on the cluster.
func clusterNode(t *testing.T, c *clustertest.Cluster, roles []string, mod func(*server.Config)) *server.Node {
	t.Helper()
	cfg := server.Config{Roles: roles, AdminToken: token, NATS: c.URLs(), NATSReplicas: 3}
	if mod != nil {
		mod(&cfg)
	}
	return nodetest.Start(t, cfg)
}

func getJSON(t *testing.T, url string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("GET %s: %s: %v", url, b, err)
		}
	}
	return resp.StatusCode
}

func register(t *testing.T, n *server.Node, service, id, url string) {
	t.Helper()
	body := `{"url":"` + url + `","ttl":"10m","check":{"path":"/","interval":"1s"}}`
	req, _ := http.NewRequest(http.MethodPut, "http://"+n.AdminAddr()+"/v1/services/"+service+"/instances/"+id, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("register: %s", resp.Status)
	}
}

// TestReadinessPerRoleOnQuorumLoss: when the engine loses its quorum, a
// gateway-only node used to turn itself away (/ready 503) although it could
// route from its cached view, and /health said "not connected" while the
// connection was up. Now the control node is not ready (it cannot write)
// while a gateway stays ready and routes from its view; /health tells the
// live connection apart from the missing write path. When the engine is
// gone entirely nothing proves a view current any more: a gateway then
// stays ready until its view is older than --max-view-age, and says so.
func TestReadinessPerRoleOnQuorumLoss(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	defer backend.Close()
	ctl := clusterNode(t, c, []string{server.RoleControl, server.RoleChecker}, nil)
	patient := clusterNode(t, c, []string{server.RoleGateway}, func(cfg *server.Config) { cfg.MaxViewAge = time.Hour })
	strict := clusterNode(t, c, []string{server.RoleGateway}, func(cfg *server.Config) { cfg.MaxViewAge = 3 * time.Second })
	register(t, ctl, "web", "w1", backend.URL)
	routes := func(n *server.Node) bool {
		resp, err := http.Get("http://" + n.GatewayAddr() + "/api/web/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	nodetest.Eventually(t, "both gateways route to the backend", func() bool { return routes(patient) && routes(strict) })
	for _, n := range []*server.Node{ctl, patient, strict} {
		if code := getJSON(t, "http://"+n.AdminAddr()+"/ready", nil); code != http.StatusOK {
			t.Fatalf("node not ready before the loss: %d", code)
		}
	}
	// Two of three servers gone: the survivor has no quorum.
	c.Kill(1)
	c.Kill(2)
	nodetest.Eventually(t, "the control node to be not ready", func() bool {
		return getJSON(t, "http://"+ctl.AdminAddr()+"/ready", nil) == http.StatusServiceUnavailable
	})
	var h struct {
		Status string `json:"status"`
		Engine struct {
			Connection string `json:"connection"`
			Writable   bool   `json:"writable"`
			Reason     string `json:"error"`
		} `json:"engine"`
		Registry struct {
			ViewAgeSeconds float64 `json:"viewAgeSeconds"`
		} `json:"registry"`
	}
	nodetest.Eventually(t, "the patient gateway's health to show a live connection without writes", func() bool {
		code := getJSON(t, "http://"+patient.AdminAddr()+"/health", &h)
		return code == http.StatusOK && h.Status == "degraded" && h.Engine.Connection == "connected" && !h.Engine.Writable && h.Engine.Reason != ""
	})
	if code := getJSON(t, "http://"+patient.AdminAddr()+"/ready", nil); code != http.StatusOK {
		t.Fatalf("the patient gateway is not ready without quorum: %d", code)
	}
	if !routes(patient) {
		t.Fatal("the patient gateway stopped routing without quorum")
	}
	// The whole engine gone: nothing proves the views current any more.
	c.Kill(0)
	var p struct {
		Detail string `json:"detail"`
	}
	nodetest.Eventually(t, "the strict gateway to be not ready once its view is older than 3s", func() bool {
		return getJSON(t, "http://"+strict.AdminAddr()+"/ready", &p) == http.StatusServiceUnavailable
	})
	if !strings.Contains(p.Detail, "registry view") || !strings.Contains(p.Detail, "--max-view-age 3s") {
		t.Fatalf("not-ready detail %q", p.Detail)
	}
	if code := getJSON(t, "http://"+patient.AdminAddr()+"/ready", nil); code != http.StatusOK || !routes(patient) {
		t.Fatalf("the patient gateway is not ready (%d) or does not route without the engine", code)
	}
	getJSON(t, "http://"+patient.AdminAddr()+"/health", &h)
	if h.Engine.Connection == "connected" || h.Status != "degraded" || h.Registry.ViewAgeSeconds <= 0 {
		t.Fatalf("health without the engine: %+v", h)
	}
	c.Restart(0)
	c.Restart(1)
	c.Restart(2)
	for _, n := range []*server.Node{ctl, patient, strict} {
		nodetest.Eventually(t, "every node ready again", func() bool {
			return getJSON(t, "http://"+n.AdminAddr()+"/ready", nil) == http.StatusOK
		})
	}
}

// newOK runs a backend that answers 200 "ok" on every path.
func newOK(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	t.Cleanup(srv.Close)
	return srv.URL
}
