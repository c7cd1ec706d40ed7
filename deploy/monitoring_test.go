// Package deploy holds no Go code: its tests check the monitoring files
// shipped beside the deployment ones (Prometheus alert rules and their
// unit tests, Grafana dashboards) with promtool and against a real node's
// /metrics.
package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

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

// runPromtool runs promtool with args and stdin and returns its combined
// output and whether it exited 0.
func runPromtool(t *testing.T, stdin string, args ...string) (string, bool) {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("promtool %v: %v", args, err)
	}
	return out.String(), err == nil
}

// exportedNames are the sample names of a /metrics text (histograms show
// as name_bucket, name_sum and name_count).
func exportedNames(text string) map[string]bool {
	names := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}

// TestNodeMetricsPassPromtool: after traffic through every component, a
// real node's /metrics passes `promtool check metrics` (naming, units,
// _total, help) and carries the series operators alert on, with the
// values the traffic produced.
func TestNodeMetricsPassPromtool(t *testing.T) {
	promtool(t)
	tr := nodetest.StartWithTraffic(t)
	text := tr.Metrics(t)
	if out, ok := runPromtool(t, text, "check", "metrics"); !ok || strings.TrimSpace(out) != "" {
		t.Errorf("promtool check metrics (ok=%v):\n%s", ok, out)
	}
	for _, want := range []string{
		`plexus_build_info{roles="gateway,control,checker",version="dev"} 1`,
		`plexus_queue_messages{queue="jobs",state="ready"} 2`,
		`plexus_queue_messages{queue="jobs",state="delayed"} 1`,
		`plexus_queue_messages{queue="jobs",state="in_flight"} 1`,
		`plexus_queue_dead_letters{queue="jobs"} 1`,
		// Seven appends: sequence 1 is the store's format marker, so the
		// newest event is at 1000 × 8 + 0 (docs/events.md, positions).
		`plexus_events_last_position 8000`,
		`plexus_events_stored 7`,
		`plexus_events_subscription_lag{group="billing"} 4`,
		`plexus_registry_instances{service="shop",status="healthy"} 2`,
		`plexus_gateway_breaker_state{service="ledger",state="open"} 1`,
		`plexus_gateway_breaker_state{service="ledger",state="closed"} 0`,
		`plexus_gateway_breaker_state{service="shop",state="closed"} 1`,
		// Created at 0 before their first use:
		`plexus_gateway_retries_total{service="shop"} 0`,
		`plexus_gateway_rate_limited_total{route="api",service="shop"} 0`,
		`plexus_gateway_ejections_total{service="shop"} 0`,
		`plexus_gateway_upstream_errors_total{kind="timeout",service="shop"} 0`,
		`plexus_queue_rejected_messages_total{queue="jobs"} 0`,
		`plexus_queue_dead_lettered_messages_total{queue="jobs",reason="expired"} 0`,
		`plexus_events_appends_total{result="conflict"} 0`,
		`plexus_events_parked_total{group="billing"} 0`,
		`plexus_registry_checks_total{result="fail"} 0`,
		`plexus_telemetry_exports_total{encoding="json",result="rejected"} 0`,
		`plexus_engine_up 1`,
		`plexus_node_ready 1`,
		`plexus_registry_cache_connected 1`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if !regexp.MustCompile(`plexus_gateway_requests_total\{http_request_method="GET",http_response_status_code="200",route="api",service="shop"\} 2\d`).MatchString(text) {
		t.Error("/metrics lacks shop's successful requests labelled with the OTel HTTP attribute names")
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", text)
	}
}

// TestAlertRules: the Prometheus configuration and alert rules are valid,
// their unit tests (alerts_test.yml) pass, and every metric a rule reads is
// exported by a node.
func TestAlertRules(t *testing.T) {
	promtool(t)
	if out, ok := runPromtool(t, "", "check", "config", "prometheus/prometheus.yml"); !ok {
		t.Errorf("promtool check config:\n%s", out)
	}
	if out, ok := runPromtool(t, "", "test", "rules", "prometheus/alerts_test.yml"); !ok {
		t.Errorf("promtool test rules:\n%s", out)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	b, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	var exprs []promExpr
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, promExpr{where: "alert " + r.Alert, expr: r.Expr})
		}
	}
	if len(exprs) < 8 {
		t.Fatalf("only %d alert rules", len(exprs))
	}
	checkExprs(t, exprs, exportedNames(nodetest.StartWithTraffic(t).Metrics(t)))
}

// promExpr is a PromQL expression and where it was found.
type promExpr struct{ where, expr string }

// dashboardFiles are the dashboards the provisioning loads.
var dashboardFiles = []string{"plexus-gateway.json", "plexus-registry.json", "plexus-queues.json", "plexus-events.json", "plexus-node.json"}

type grafanaPanel struct {
	Title   string `json:"title"`
	Type    string `json:"type"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"`
}

type grafanaDashboard struct {
	UID        string         `json:"uid"`
	Title      string         `json:"title"`
	Panels     []grafanaPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

// TestGrafanaDashboards loads every provisioned dashboard, extracts every
// PromQL expression (panels and template variables), checks that promtool
// parses it, and that each metric it names is exported by a running node
// after traffic.
func TestGrafanaDashboards(t *testing.T) {
	promtool(t)
	var prov struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	b, err := os.ReadFile("grafana/provisioning/dashboards/plexus.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &prov); err != nil || len(prov.Providers) != 1 || prov.Providers[0].Options.Path == "" {
		t.Fatalf("dashboard provisioning: %v %+v", err, prov)
	}
	files, _ := filepath.Glob("grafana/dashboards/*.json")
	var got []string
	for _, f := range files {
		got = append(got, filepath.Base(f))
	}
	sort.Strings(got)
	want := slices.Sorted(slices.Values(dashboardFiles))
	if !slices.Equal(got, want) {
		t.Fatalf("dashboards %v, want %v", got, want)
	}
	var exprs []promExpr
	uids := map[string]bool{}
	for _, f := range files {
		exprs = append(exprs, dashboardExprs(t, f, uids)...)
	}
	checkExprs(t, exprs, exportedNames(nodetest.StartWithTraffic(t).Metrics(t)))
}

func dashboardExprs(t *testing.T, file string, uids map[string]bool) []promExpr {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if d.UID == "" || d.Title == "" || uids[d.UID] {
		t.Errorf("%s: uid %q title %q: both required, uid unique", file, d.UID, d.Title)
	}
	uids[d.UID] = true
	var exprs []promExpr
	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			walk(p.Panels)
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", file, p.Title)
			}
			for _, tg := range p.Targets {
				exprs = append(exprs, promExpr{where: fmt.Sprintf("%s panel %q", file, p.Title), expr: tg.Expr})
			}
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		q, _ := v.Query.(map[string]any)
		if s, ok := q["query"].(string); ok {
			if m := regexp.MustCompile(`^label_values\((.+), *\w+\)$`).FindStringSubmatch(s); m != nil {
				exprs = append(exprs, promExpr{where: fmt.Sprintf("%s variable %s", file, v.Name), expr: m[1]})
			} else {
				t.Errorf("%s: variable %s: query %q is not label_values(selector, label)", file, v.Name, s)
			}
		}
	}
	if len(exprs) < 5 {
		t.Errorf("%s: only %d expressions", file, len(exprs))
	}
	return exprs
}

// grafanaVars replaces the dashboard variables by values PromQL accepts.
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "$instance", ".*", "$service", ".*",
	"$queue", ".*", "$group", ".*")

// prometheusSynthetic are series Prometheus makes itself at each scrape.
var prometheusSynthetic = map[string]bool{"up": true}

// checkExprs checks that promtool parses every expression (as recording
// rules) and that every metric each one names is in exported.
func checkExprs(t *testing.T, exprs []promExpr, exported map[string]bool) {
	t.Helper()
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: check\n    rules:\n")
	for i, e := range exprs {
		expr := grafanaVars.Replace(e.expr)
		if strings.Contains(expr, "$") {
			t.Errorf("%s: unknown variable in %s", e.where, e.expr)
		}
		js, _ := json.Marshal(expr)
		fmt.Fprintf(&rules, "      - record: check:expr_%d\n        expr: %s\n", i, js)
		names := metricNames(expr)
		if len(names) == 0 {
			t.Errorf("%s: names no metric: %s", e.where, e.expr)
		}
		for _, n := range names {
			if !exported[n] && !prometheusSynthetic[n] {
				t.Errorf("%s: metric %s is not exported by the node (%s)", e.where, n, e.expr)
			}
		}
	}
	f := filepath.Join(t.TempDir(), "exprs.yml")
	if err := os.WriteFile(f, []byte(rules.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, ok := runPromtool(t, "", "check", "rules", f); !ok {
		t.Errorf("promtool does not parse every expression:\n%s", out)
	}
}
