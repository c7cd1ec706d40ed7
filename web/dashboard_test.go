package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/plexushq/plexus/internal/nodetest"
)

// chromium finds the browser scripts/test-deps.sh installs. Without one the
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

// artifacts is where the screenshots go: $PLEXUS_TEST_ARTIFACTS/dashboard,
// by default test-artifacts/dashboard at the repository root (gitignored).
func artifacts(t *testing.T) string {
	t.Helper()
	base := os.Getenv("PLEXUS_TEST_ARTIFACTS")
	if base == "" {
		base = filepath.Join("..", "test-artifacts")
	}
	dir := filepath.Join(base, "dashboard")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser is one headless Chromium page driven over the DevTools protocol.
type browser struct {
	t   *testing.T
	ctx context.Context
	dir string
}

func newBrowser(t *testing.T, exe string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1400, 1000))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	ctx, cancelC := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelC(); cancelB(); cancelA() })
	return &browser{t: t, ctx: ctx, dir: artifacts(t)}
}

func (b *browser) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.shot("failed-" + strings.ReplaceAll(what, " ", "-"))
		b.t.Fatalf("%s: %v", what, err)
	}
}

// text is the visible text of the first element matching sel.
func (b *browser) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("read %s: %v", sel, err)
	}
	return s
}

// evalJS is an action that runs js and ignores its value.
func evalJS(js string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[any](js)(ctx, t)
		return err
	})
}

// eval runs js in the page and decodes its value into out.
func (b *browser) eval(js string, out any) {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[json.RawMessage](js))
	if err == nil {
		err = json.Unmarshal(v, out)
	}
	if err != nil {
		b.t.Fatalf("eval %s: %v", js, err)
	}
}

// shot saves a full-page screenshot as name.png under the artifacts folder.
func (b *browser) shot(name string) string {
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	path := filepath.Join(b.dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %s", path)
	return path
}

// noGarbage fails on text a broken render leaves.
func (b *browser) noGarbage(tab string) {
	b.t.Helper()
	body := b.text("body")
	for _, bad := range []string{"NaN", "undefined", "Invalid Date", "[object Object]"} {
		if strings.Contains(body, bad) {
			b.t.Errorf("tab %s shows %q:\n%s", tab, bad, body)
		}
	}
	var cls string
	b.eval(`document.getElementById("status").className`, &cls)
	if cls == "error" {
		b.t.Errorf("tab %s: status line shows an error: %s", tab, b.text("#status"))
	}
}

var dateTime = regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d:\d\d`)

// TestDashboardInBrowser puts data into a real node (services, requests,
// open breakers, queues with dead letters, events, traces), then drives the
// dashboard in headless Chromium through every tab, checks what each shows,
// and saves a screenshot of each under test-artifacts/dashboard.
func TestDashboardInBrowser(t *testing.T) {
	exe := chromium(t)
	tr := nodetest.StartWithTraffic(t, "  historyInterval: 200ms")
	legacy := legacyService(t, tr)
	feed(t, tr)
	traceID := postCraftedTrace(t, tr)
	b := newBrowser(t, exe)
	b.run("open services", chromedp.Navigate(tr.Admin+"/ui/#token="+tr.Token+"&tab=services"),
		chromedp.WaitVisible(chromedp.CSS(`#services table`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-chart="svc-rate"] canvas`)))
	var hash string
	b.eval(`location.hash`, &hash)
	if strings.Contains(hash, "token") {
		t.Errorf("the token stays in the address bar: %s", hash)
	}
	checkServices(t, b)
	checkBreakers(t, b, legacy)
	checkQueues(t, b, tr)
	checkEvents(t, b)
	checkTraceSearch(t, b)
	checkWaterfall(t, b, tr, traceID)
}

func checkServices(t *testing.T, b *browser) {
	body := b.text("#services")
	for _, w := range []string{"shop", "ledger", "shop-1", "eu-1", "1.4.2", "Requests per second", "Errors (5xx) per second", "p99"} {
		if !strings.Contains(body, w) {
			t.Errorf("services tab lacks %q", w)
		}
	}
	if !dateTime.MatchString(body) || !strings.Contains(body, "(in ") {
		t.Errorf("services tab shows no lease expiry with date and time left:\n%s", body)
	}
	// The uptime ticks between refreshes.
	before := b.text("#node")
	time.Sleep(2500 * time.Millisecond)
	if after := b.text("#node"); after == before || !strings.Contains(after, "up ") {
		t.Errorf("uptime did not move: %q then %q", before, after)
	}
	b.noGarbage("services")
	b.shot("services")
}

func checkBreakers(t *testing.T, b *browser, legacy string) {
	b.run("open breakers by clicking the tab", chromedp.Click(chromedp.CSS(`#tabs a[data-tab="breakers"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.tl-row[data-service="ledger"]`)))
	body := b.text("#breakers")
	if !strings.Contains(body, "Circuit breaker state over time") {
		t.Errorf("no breaker timeline:\n%s", body)
	}
	var openSegs int
	b.eval(`document.querySelectorAll('.tl-row[data-service="ledger"] .tl-seg.open').length`, &openSegs)
	if openSegs == 0 {
		t.Error("ledger's timeline has no open segment")
	}
	if !strings.Contains(body, "probe allowed in") {
		t.Errorf("ledger's open breaker shows no retry time:\n%s", body)
	}
	if !strings.Contains(body, "reset timeout passed: the next request probes") {
		t.Errorf("%s's breaker is past its reset timeout but shows no probe hint:\n%s", legacy, body)
	}
	b.noGarbage("breakers")
	b.shot("breakers")
}

func checkQueues(t *testing.T, b *browser, tr *nodetest.Traffic) {
	// A #tab= link followed on the page (hashchange), not a reload.
	b.run("open queues by hash", evalJS(`location.hash = "#tab=queues"`),
		chromedp.WaitVisible(chromedp.CSS(`#queues table`)))
	var q struct {
		QueueSize, InFlight int64
	}
	tr.AdminJSON(t, "GET", "/v1/queues/jobs", "", &q)
	var cells []string
	b.eval(`document.querySelector("#queues table.queue-list tbody tr").innerText.split("\t")`, &cells)
	var heads []string
	b.eval(`[...document.querySelectorAll("#queues table.queue-list th")].map(th => th.innerText.toLowerCase())`, &heads)
	if len(cells) < 3 || cells[0] != "jobs" || heads[1] != "ready" || heads[2] != "in flight" ||
		cells[1] != fmt.Sprint(q.QueueSize-q.InFlight) || cells[2] != fmt.Sprint(q.InFlight) {
		t.Errorf("queue row %q under %q: want ready %d (queueSize %d − in flight %d)", cells, heads, q.QueueSize-q.InFlight, q.QueueSize, q.InFlight)
	}
	b.run("open dead letters", chromedp.Click(chromedp.Search(`//a[text()="dead letters"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.dead-letters[data-queue="jobs"]`)))
	first := b.text("#status")
	// Two refreshes later the dead letters are still on screen.
	deadline := time.Now().Add(30 * time.Second)
	for refreshes := 0; refreshes < 2; {
		if time.Now().After(deadline) {
			t.Fatal("the dashboard stopped refreshing")
		}
		time.Sleep(500 * time.Millisecond)
		if s := b.text("#status"); s != first {
			first, refreshes = s, refreshes+1
		}
	}
	dl := b.text(".dead-letters")
	if !strings.Contains(dl, "card declined") || !strings.Contains(dl, "max_attempts_reached") || !dateTime.MatchString(dl) {
		t.Errorf("dead letters after refreshes:\n%s", dl)
	}
	b.noGarbage("queues")
	b.shot("queues-dead-letters")
}

func checkEvents(t *testing.T, b *browser) {
	b.run("open events", chromedp.Click(chromedp.CSS(`#tabs a[data-tab="events"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-chart="ev-rate"]`)))
	body := b.text("#events")
	for _, w := range []string{"order-42", "order.paid", "billing", "Events appended per second", "Subscription lag"} {
		if !strings.Contains(body, w) {
			t.Errorf("events tab lacks %q", w)
		}
	}
	b.noGarbage("events")
	b.shot("events")
}

func checkTraceSearch(t *testing.T, b *browser) {
	b.run("open traces", chromedp.Click(chromedp.CSS(`#tabs a[data-tab="traces"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#trace-search`)))
	b.run("search gateway errors",
		chromedp.SetValue(chromedp.CSS(`#f-service`), "plexus"),
		evalJS(`document.getElementById("f-service").dispatchEvent(new Event("change"))`),
		chromedp.SetValue(chromedp.CSS(`#f-operation`), "GET /api/{service}/*"),
		chromedp.Click(chromedp.CSS(`#f-errors`)),
		chromedp.Click(chromedp.CSS(`#trace-search button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#trace-search[data-for*="errors=true"]`)),
		chromedp.WaitVisible(chromedp.CSS(`table.trace-list`)))
	var hash string
	b.eval(`location.hash`, &hash)
	if !strings.Contains(hash, "errors=true") || !strings.Contains(hash, "service=plexus") {
		t.Errorf("the search is not in the address: %s", hash)
	}
	var rows [][]string
	b.eval(`[...document.querySelectorAll("table.trace-list tbody tr")].map(r => r.innerText.split("\t"))`, &rows)
	if len(rows) == 0 || len(rows[0]) < 7 {
		t.Fatalf("no traces found for gateway errors: %v", rows)
	}
	for _, r := range rows {
		if !strings.Contains(r[1], "GET /api/{service}/*") || r[6] == "0" {
			t.Errorf("search for erroneous gateway traces found %v", r)
		}
	}
	b.noGarbage("traces")
	b.shot("traces-search")
}

func checkWaterfall(t *testing.T, b *browser, tr *nodetest.Traffic, traceID string) {
	b.run("open the crafted trace", evalJS(`location.hash = "#tab=traces&trace=`+traceID+`"`),
		chromedp.WaitVisible(chromedp.CSS(`.waterfall .wf-row[data-span-id]`)))
	var rows []struct {
		ID     string `json:"id"`
		Depth  string `json:"depth"`
		Offset string `json:"offset"`
		Text   string `json:"text"`
	}
	b.eval(`[...document.querySelectorAll(".waterfall .wf-row[data-span-id]")].map(r => ({id: r.dataset.spanId,
	  depth: r.dataset.depth, offset: r.dataset.offsetNs, text: r.innerText}))`, &rows)
	var got []string
	for _, r := range rows {
		got = append(got, r.ID+"@"+r.Depth+"+"+r.Offset)
	}
	// Depth-first, children by start time, offsets to the nanosecond.
	want := []string{"a000000000000001@0+0", "a000000000000002@1+41000", "a000000000000004@2+45500",
		"a000000000000003@1+900000", "a000000000000005@0+1200000"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("waterfall rows %v, want %v", got, want)
	}
	if len(rows) == 5 && (!strings.Contains(rows[1].Text, "10 µs") || !strings.Contains(rows[3].Text, "⚠")) {
		t.Errorf("durations or error marks missing: %q %q", rows[1].Text, rows[3].Text)
	}
	b.run("open span details", chromedp.Click(chromedp.CSS(`.wf-row[data-span-id="a000000000000003"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.span-details[data-span-id="a000000000000003"]`)))
	d := b.text(".span-details")
	for _, w := range []string{"charge card", "payments", "error: card declined", "payment.amount", "4200", "retry",
		"+50 µs", "deployment.environment.name", "staging", "service.version", "2.3.1", "payments-sdk", "+900 µs"} {
		if !strings.Contains(d, w) {
			t.Errorf("span details lack %q:\n%s", w, d)
		}
	}
	b.noGarbage("trace")
	b.shot("trace-waterfall")
	_ = tr
}

// legacyService registers a service whose breaker opens after two failures
// and allows a probe one second later, and waits until that second passed.
func legacyService(t *testing.T, tr *nodetest.Traffic) string {
	t.Helper()
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			http.Error(w, "legacy down", http.StatusBadGateway)
		}
	}))
	t.Cleanup(be.Close)
	tr.Admin2xx(t, "PUT", "/v1/services/legacy/instances/legacy-1", fmt.Sprintf(`{"url":%q,"check":{"interval":"1h"}}`, be.URL))
	nodetest.Eventually(t, "the gateway sees legacy", func() bool { return getStatus(tr.Gateway+"/api/legacy/x") == http.StatusBadGateway })
	getStatus(tr.Gateway + "/api/legacy/x")
	if code := getStatus(tr.Gateway + "/api/legacy/x"); code != http.StatusServiceUnavailable {
		t.Fatalf("legacy's breaker should be open: %d", code)
	}
	nodetest.Eventually(t, "legacy's reset timeout passes", func() bool {
		var bs []struct {
			Service, Instance, State string
			RetryAfter               *string
		}
		tr.AdminJSON(t, "GET", "/v1/breakers", "", &bs)
		for _, br := range bs {
			if br.Service == "legacy" && br.Instance == "" {
				return br.State == "open" && br.RetryAfter == nil
			}
		}
		return false
	})
	return "legacy"
}

// feed sends varying traffic for a few seconds so the charts, sampled
// every 200ms, have a shape: request bursts with failures, a queue that
// fills, events appended.
func feed(t *testing.T, tr *nodetest.Traffic) {
	t.Helper()
	for round := range 14 {
		for i := range 2 + (round%5)*3 {
			getStatus(fmt.Sprintf("%s/api/shop/items/%d", tr.Gateway, i))
		}
		if round%4 == 1 {
			getStatus(tr.Gateway + "/api/shop/fail")
		}
		getStatus(tr.Gateway + "/api/ledger/balance")
		tr.Admin2xx(t, "POST", "/v1/queues/jobs/messages", fmt.Sprintf(`{"payload":{"round":%d}}`, round))
		tr.Admin2xx(t, "POST", "/v1/streams/order-43/events", fmt.Sprintf(`{"events":[{"type":"order.placed","data":{"round":%d}}]}`, round))
		time.Sleep(250 * time.Millisecond)
	}
}

// postCraftedTrace sends, over OTLP/JSON, a trace whose spans start
// microseconds apart, with an error span carrying attributes and events,
// and a resource with version and environment: what the waterfall must
// place to the microsecond.
func postCraftedTrace(t *testing.T, tr *nodetest.Traffic) string {
	t.Helper()
	const id = "5b8efff798038103d269b633813fc60c"
	base := time.Now().Add(-time.Minute).Truncate(time.Second).UnixNano()
	ns := func(off int64) string { return fmt.Sprint(base + off) }
	span := func(sid, parent, name string, kind int, start, end int64, extra string) string {
		p := ""
		if parent != "" {
			p = fmt.Sprintf(`"parentSpanId":%q,`, parent)
		}
		return fmt.Sprintf(`{"traceId":%q,"spanId":%q,%s"name":%q,"kind":%d,"startTimeUnixNano":%q,"endTimeUnixNano":%q%s}`,
			id, sid, p, name, kind, ns(start), ns(end), extra)
	}
	errSpan := span("a000000000000003", "a000000000000001", "charge card", 3, 900_000, 1_100_000,
		`,"status":{"code":2,"message":"card declined"},"attributes":[{"key":"payment.amount","value":{"intValue":"4200"}}],`+
			`"events":[{"name":"retry","timeUnixNano":"`+ns(950_000)+`","attributes":[{"key":"attempt","value":{"intValue":"2"}}]}]`)
	body := `{"resourceSpans":[{"resource":{"attributes":[
	  {"key":"service.name","value":{"stringValue":"payments"}},
	  {"key":"service.version","value":{"stringValue":"2.3.1"}},
	  {"key":"deployment.environment.name","value":{"stringValue":"staging"}}]},
	  "scopeSpans":[{"scope":{"name":"payments-sdk","version":"0.9.0"},"spans":[` +
		span("a000000000000001", "", "POST /payments", 2, 0, 1_000_000, "") + "," +
		span("a000000000000002", "a000000000000001", "validate", 1, 41_000, 51_000, "") + "," +
		span("a000000000000004", "a000000000000002", "load rules", 1, 45_500, 49_000, "") + "," +
		errSpan + "," +
		span("a000000000000005", "", "audit", 1, 1_200_000, 1_300_000, "") + `]}]}]}`
	var out json.RawMessage
	tr.AdminJSON(t, "POST", "/v1/traces", body, &out)
	return id
}

func getStatus(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
