package nodetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plexushq/plexus/eventstore"
	"github.com/plexushq/plexus/server"
)

// TrafficConfig is the configuration file StartWithTraffic runs the node
// with (%s: more lines of the telemetry section): every trace sampled,
// checks traced (so the trace store has both kinds), for ledger a breaker
// that opens after 3 failures and stays open for an hour, for legacy one
// whose reset timeout is a second.
const TrafficConfig = `telemetry:
  sampleRatio: 1
  traceHealthChecks: true
%s
gateway:
  retries: {attempts: 1}
  services:
    ledger:
      breaker: {failureThreshold: 3, resetTimeout: 1h}
    legacy:
      breaker: {failureThreshold: 2, resetTimeout: 1s}
`

// Traffic is what StartWithTraffic put into its node.
type Traffic struct {
	Node    *server.Node
	Admin   string // http://host:port of the admin listener
	Gateway string // http://host:port of the gateway listener
	Token   string
	// Shop is a healthy service (two instances, checked every 200ms);
	// Ledger's only instance answers 500, so its breaker is open.
	Shop, Ledger string
	// Queue holds ready, delayed and in-flight messages, and one dead letter.
	Queue string
	// Stream has events; Group is a subscriber group that lags behind it.
	Stream, Group string
	// Backend counts the requests the upstreams answered.
	Backend *atomic.Int64
}

// StartWithTraffic runs a node with TrafficConfig and puts data in every
// component through the public APIs: registered services with checks,
// gateway requests that succeed, fail and open a breaker, a queue with
// messages in every state and a dead letter, appended events and a
// subscriber group that lags. It returns once all of it is in place.
// telemetry adds lines to the file's telemetry section (indented by two
// spaces), e.g. "  historyInterval: 200ms".
func StartWithTraffic(t testing.TB, telemetry ...string) *Traffic {
	t.Helper()
	cfgPath := filepath.Join(t.TempDir(), "plexus.yaml")
	body := fmt.Sprintf(TrafficConfig, strings.Join(telemetry, "\n"))
	if err := os.WriteFile(cfgPath, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	n := Start(t, server.Config{ConfigFile: cfgPath, AdminToken: "0123456789abcdef-traffic"})
	tr := &Traffic{Node: n, Admin: "http://" + n.AdminAddr(), Gateway: "http://" + n.GatewayAddr(),
		Token: n.Token(), Shop: "shop", Ledger: "ledger", Queue: "jobs", Stream: "order-42", Group: "billing",
		Backend: new(atomic.Int64)}
	tr.services(t)
	tr.requests(t)
	tr.queue(t)
	tr.events(t)
	return tr
}

func (tr *Traffic) services(t testing.TB) {
	t.Helper()
	shop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/health":
		case "/fail":
			tr.Backend.Add(1)
			http.Error(w, "boom", http.StatusInternalServerError)
		default:
			tr.Backend.Add(1)
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"items":[1,2,3]}`)
		}
	}))
	t.Cleanup(shop.Close)
	ledger := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			tr.Backend.Add(1)
			http.Error(w, "ledger down", http.StatusInternalServerError)
		}
	}))
	t.Cleanup(ledger.Close)
	for _, id := range []string{"shop-1", "shop-2"} {
		tr.Admin2xx(t, "PUT", "/v1/services/shop/instances/"+id,
			fmt.Sprintf(`{"url":%q,"version":"1.4.2","zone":"eu-1","check":{"path":"/health","interval":"200ms"}}`, shop.URL))
	}
	tr.Admin2xx(t, "PUT", "/v1/services/ledger/instances/ledger-1",
		fmt.Sprintf(`{"url":%q,"check":{"path":"/health","interval":"1h"}}`, ledger.URL))
	Eventually(t, "the gateway sees shop and ledger", func() bool {
		resp, err := http.Get(tr.Gateway + "/health")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var h struct {
			Services map[string]struct{ Healthy int } `json:"services"`
		}
		return json.NewDecoder(resp.Body).Decode(&h) == nil && h.Services["shop"].Healthy == 2 && h.Services["ledger"].Healthy == 1
	})
}

// requests sends successes and failures through the gateway, enough
// failures to ledger to open its breaker.
func (tr *Traffic) requests(t testing.TB) {
	t.Helper()
	get := func(path string) int {
		resp, err := http.Get(tr.Gateway + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := range 24 {
		get(fmt.Sprintf("/api/shop/items/%d", i))
		if i%8 == 0 {
			get("/api/shop/fail") // one failure at a time: shop's breaker stays closed
		}
	}
	for range 6 {
		get("/api/ledger/balance")
	}
	if code := get("/api/ledger/balance"); code != http.StatusServiceUnavailable {
		t.Fatalf("ledger's breaker should be open: GET answered %d", code)
	}
	get("/api/nowhere/x")
}

func (tr *Traffic) queue(t testing.TB) {
	t.Helper()
	q := "/v1/queues/" + tr.Queue
	tr.Admin2xx(t, "PUT", q, `{"retryAttempts":1,"visibilityTimeout":"10m"}`)
	for i := range 5 {
		tr.Admin2xx(t, "POST", q+"/messages", fmt.Sprintf(`{"payload":{"order":%d},"priority":%d}`, i, i%3))
	}
	tr.Admin2xx(t, "POST", q+"/messages", `{"payload":{"order":"later"},"delay":"1h"}`)
	var got struct {
		Messages []struct{ Receipt string } `json:"messages"`
	}
	tr.AdminJSON(t, "POST", q+"/receive", `{"max":3,"wait":"2s"}`, &got)
	if len(got.Messages) != 3 {
		t.Fatalf("received %d messages, want 3", len(got.Messages))
	}
	tr.Admin2xx(t, "POST", q+"/ack", fmt.Sprintf(`{"receipts":[%q]}`, got.Messages[0].Receipt))
	tr.Admin2xx(t, "POST", q+"/nack", fmt.Sprintf(`{"receipt":%q,"error":"card declined"}`, got.Messages[1].Receipt))
	Eventually(t, "the nacked message is dead-lettered", func() bool {
		var dl struct{ Messages []json.RawMessage }
		tr.AdminJSON(t, "GET", q+"/dead-letters", "", &dl)
		return len(dl.Messages) == 1
	})
}

// events appends events, subscribes a group that handles the first ones,
// stops it, then appends more, so the group lags.
func (tr *Traffic) events(t testing.TB) {
	t.Helper()
	appendOne := func(typ string, i int) {
		tr.Admin2xx(t, "POST", "/v1/streams/"+tr.Stream+"/events",
			fmt.Sprintf(`{"events":[{"type":%q,"data":{"n":%d}}]}`, typ, i))
	}
	for i := range 3 {
		appendOne("order.placed", i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The subscriber shares the node's registry, as a service scraped beside
	// the node would export plexus_events_handled_total.
	store := eventstore.New(tr.Node.Engine(), eventstore.Config{Metrics: tr.Node.Metrics()})
	if err := store.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = store.Stop(ctx) }()
	var handled atomic.Int64
	sub, err := store.Subscribe(ctx, tr.Group, func(context.Context, eventstore.Envelope) error {
		handled.Add(1)
		return nil
	}, eventstore.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Positions are 1000 × sequence + index (docs/events.md), so count the
	// events handled, not positions: all three are checkpointed at Stop.
	Eventually(t, "the group handles the first events", func() bool { return handled.Load() >= 3 })
	if err := sub.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		appendOne("order.paid", i)
	}
}

// Admin2xx calls the admin API and fails the test unless it answers 2xx.
func (tr *Traffic) Admin2xx(t testing.TB, method, path, body string) {
	t.Helper()
	tr.AdminJSON(t, method, path, body, nil)
}

// AdminJSON calls the admin API, fails the test unless it answers 2xx,
// and decodes the answer into out (when not nil).
func (tr *Traffic) AdminJSON(t testing.TB, method, path, body string, out any) {
	t.Helper()
	req, err := http.NewRequest(method, tr.Admin+path, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tr.Token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
}

// Metrics returns the text of the admin listener's /metrics.
func (tr *Traffic) Metrics(t testing.TB) string {
	t.Helper()
	resp, err := http.Get(tr.Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Eventually polls cond every 50ms for up to 20s (a generous bound for a
// loaded machine) and fails the test with what when it never holds.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
