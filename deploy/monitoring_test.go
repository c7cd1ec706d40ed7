// Package deploy holds no Go code: its tests check the monitoring files
// shipped beside the deployment ones (Prometheus alert rules and their
// unit tests, Grafana dashboards) against a real node's /metrics.
package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/plexushq/plexus/internal/nodetest"
)

// promtool finds Prometheus's promtool (Debian's prometheus package, which
// scripts/test-deps.sh installs). Without it the tests fail when
// PLEXUS_REQUIRE_PROMTOOL is set (scripts/test.sh sets it) and are skipped
// otherwise, so `go test` works on a bare machine.
func promtool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	if os.Getenv("PLEXUS_REQUIRE_PROMTOOL") != "" {
		t.Fatal("no promtool on PATH; scripts/test-deps.sh installs it (Debian package prometheus)")
	}
	t.Skip("no promtool on PATH (scripts/test.sh installs it)")
	return ""
}

// runPromtool runs promtool with args and stdin, returning its combined
// output and whether it exited 0.
func runPromtool(t *testing.T, stdin string, args ...string) (string, bool) {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("promtool %v: %v", args, err)
		}
	}
	return out.String(), err == nil
}

func TestMetricsExplore(t *testing.T) {
	tr := nodetest.StartWithTraffic(t)
	text := tr.Metrics(t)
	os.WriteFile("/tmp/plexus-metrics.txt", []byte(text), 0o644)
	out, ok := runPromtool(t, text, "check", "metrics")
	t.Logf("ok=%v\n%s", ok, out)
}
