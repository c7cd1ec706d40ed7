package server

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// chromium finds the browser the test script installs. Without one the
// test fails when PLEXUS_REQUIRE_BROWSER is set (as scripts/test.sh does)
// and is skipped otherwise, so `go test` works on a bare machine.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("PLEXUS_REQUIRE_BROWSER") != "" {
		t.Fatal("no chromium on PATH; scripts/test-deps.sh installs it")
	}
	t.Skip("no chromium on PATH (scripts/test.sh installs it)")
	return ""
}

// renderDashboard loads a dashboard tab in headless Chromium and returns
// the DOM after its scripts ran.
func renderDashboard(t *testing.T, browser, base, token, tab string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--virtual-time-budget=5000", "--dump-dom",
		base+"/ui/#token="+token+"&tab="+tab)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, errb.String())
	}
	return out.String()
}

func adminCall(t *testing.T, method, url, token, body string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %d", method, url, resp.StatusCode)
	}
}

// TestDashboardInBrowser renders every tab of the dashboard in a real
// browser against a real node and checks that what the APIs hold shows up.
func TestDashboardInBrowser(t *testing.T) {
	browser := chromium(t)
	const token = "0123456789abcdef-dashboard"
	n := startNode(t, Config{AdminToken: token})
	base := "http://" + n.AdminAddr()
	adminCall(t, "PUT", base+"/v1/services/web-dash/instances/inst-dash-1", token,
		`{"url":"http://127.0.0.1:1","zone":"zone-dash","check":{"interval":"1h"}}`)
	adminCall(t, "PUT", base+"/v1/queues/jobs-dash", token, `{}`)
	adminCall(t, "POST", base+"/v1/queues/jobs-dash/messages", token, `{"payload":{"n":1}}`)
	adminCall(t, "POST", base+"/v1/streams/user-dash/events", token, `{"events":[{"type":"user.dashcreated","data":{"name":"Ada"}}]}`)

	for tab, want := range map[string][]string{
		"services": {"web-dash", "inst-dash-1", "zone-dash", "healthy"},
		"queues":   {"jobs-dash", "jobs-dash.dlq"},
		"events":   {"user-dash", "user.dashcreated", `{"name":"Ada"}`},
		"traces":   {"Recent traces", "plexus"},
		"breakers": {"Circuit breakers"},
	} {
		dom := renderDashboard(t, browser, base, token, tab)
		for _, w := range want {
			if !strings.Contains(dom, w) && !strings.Contains(dom, strings.ReplaceAll(w, `"`, "&quot;")) {
				t.Errorf("tab %s: rendered page lacks %q", tab, w)
			}
		}
		for _, bad := range []string{"NaN", "undefined", `id="status" class="error"`} {
			if strings.Contains(dom, bad) {
				t.Errorf("tab %s: rendered page shows %q", tab, bad)
			}
		}
		if t.Failed() {
			t.Logf("tab %s DOM:\n%s", tab, dom)
		}
	}
}
