package queue

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/plexushq/plexus/internal/httpguard"
)

type httpClient struct {
	t    *testing.T
	base string
	// timeout bounds each request when set.
	timeout time.Duration
}

func (h httpClient) do(method, path, ctype, body string) (int, map[string]any, string) {
	h.t.Helper()
	req, _ := http.NewRequest(method, h.base+path, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := (&http.Client{Timeout: h.timeout}).Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	if resp.StatusCode >= 400 && resp.Header.Get("Content-Type") != "application/problem+json" {
		h.t.Fatalf("%s %s: %d without a problem body: %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode, m, string(b)
}

func (h httpClient) json(method, path, body string) (int, map[string]any, string) {
	return h.do(method, path, "application/json", body)
}

func TestHTTPFlow(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := httpClient{t: t, base: f.server().URL}
	if st, _, b := h.json("PUT", "/v1/queues/jobs", `{"maxSize":10,"retryDelay":"100ms"}`); st != 201 {
		t.Fatalf("create %d %s", st, b)
	}
	if st, m, b := h.json("PUT", "/v1/queues/jobs", `{"maxSize":20,"retryDelay":"100ms"}`); st != 200 || m["config"].(map[string]any)["maxSize"] != 20.0 {
		t.Fatalf("update %d %s", st, b)
	}
	st, m, b := h.json("POST", "/v1/queues/jobs/messages", `{"payload":{"a":1},"priority":2,"id":"j1","headers":{"X-T":"1"}}`)
	if st != 201 || m["id"] != "j1" {
		t.Fatalf("publish %d %s", st, b)
	}
	st, m, b = h.json("POST", "/v1/queues/jobs/messages", `{"messages":[{"payload":"x"},{"payload":[1],"delay":"1h"}]}`)
	if st != 201 || len(m["ids"].([]any)) != 2 {
		t.Fatalf("batch %d %s", st, b)
	}
	st, m, b = h.json("POST", "/v1/queues/jobs/receive", `{"max":5,"wait":"1s","consumer":"w1"}`)
	msgs, _ := m["messages"].([]any)
	if st != 200 || len(msgs) != 2 {
		t.Fatalf("receive %d %s", st, b)
	}
	first := msgs[0].(map[string]any)
	if first["id"] != "j1" || first["payload"].(map[string]any)["a"] != 1.0 || first["attempts"] != 1.0 || first["headers"].(map[string]any)["X-T"] != "1" {
		t.Fatalf("first %v", first)
	}
	second := msgs[1].(map[string]any)
	if st, _, b := h.json("POST", "/v1/queues/jobs/ack", `{"receipts":["`+first["receipt"].(string)+`"]}`); st != 200 {
		t.Fatalf("ack %d %s", st, b)
	}
	if st, _, b := h.json("POST", "/v1/queues/jobs/nack", `{"receipt":"`+second["receipt"].(string)+`","error":"bad","delay":"10ms"}`); st != 200 {
		t.Fatalf("nack %d %s", st, b)
	}
	st, m, _ = h.json("GET", "/v1/queues/jobs", "")
	if st != 200 || m["delayed"] != 1.0 || m["totalConsumers"] != 1.0 || m["activeConsumers"] != 1.0 || m["name"] != "jobs" {
		t.Fatalf("stats %v", m)
	}
	st, _, b = h.json("GET", "/v1/queues", "")
	if st != 200 || !strings.Contains(b, `"name":"jobs"`) || !strings.Contains(b, `"name":"jobs.dlq"`) {
		t.Fatalf("list %d %s", st, b)
	}
	if st, m, b := h.json("GET", "/v1/queues/jobs/dead-letters", ""); st != 200 || len(m["messages"].([]any)) != 0 {
		t.Fatalf("dead letters %d %s", st, b)
	}
	if st, m, _ := h.json("POST", "/v1/queues/jobs/dead-letters/redrive", ""); st != 200 || m["redriven"] != 0.0 {
		t.Fatalf("redrive %d %v", st, m)
	}
	if st, _, _ := h.json("DELETE", "/v1/queues/jobs/dead-letters", ""); st != 204 {
		t.Fatalf("purge %d", st)
	}
	if st, _, _ := h.json("DELETE", "/v1/queues/jobs", ""); st != 204 {
		t.Fatalf("delete %d", st)
	}
	if st, m, _ := h.json("GET", "/v1/queues/jobs", ""); st != 404 || m["detail"] != "Queue not found: jobs" {
		t.Fatalf("after delete %d %v", st, m)
	}
}

func TestHTTPBadInputChangesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := httpClient{t: t, base: f.server().URL}
	f.create("q", Config{MaxSize: 5})
	f.publish("q", Message{ID: "keep", Payload: []byte(`1`)})
	ds := f.receive("q", 1, time.Second)
	receipt := ds[0].Receipt
	before := f.stats("q")
	cases := []struct {
		name, method, path, ctype, body string
		status                          int
	}{
		{"bad name", "PUT", "/v1/queues/.bad", "application/json", `{}`, 400},
		{"unknown field", "PUT", "/v1/queues/q", "application/json", `{"maxSizes":1}`, 400},
		{"bad duration", "PUT", "/v1/queues/q", "application/json", `{"ttl":5}`, 400},
		{"bad overflow", "PUT", "/v1/queues/q", "application/json", `{"overflow":"x"}`, 422},
		{"negative size", "PUT", "/v1/queues/q", "application/json", `{"maxSize":-1}`, 422},
		{"self dlq", "PUT", "/v1/queues/q", "application/json", `{"deadLetterQueue":"q"}`, 422},
		{"wrong type", "PUT", "/v1/queues/q", "text/plain", `{}`, 415},
		{"trailing", "PUT", "/v1/queues/q", "application/json", `{} {}`, 400},
		{"get unknown", "GET", "/v1/queues/nope", "", "", 404},
		{"delete unknown", "DELETE", "/v1/queues/nope", "", "", 404},
		{"publish unknown", "POST", "/v1/queues/nope/messages", "application/json", `{"payload":1}`, 404},
		{"priority high", "POST", "/v1/queues/q/messages", "application/json", `{"payload":1,"priority":10}`, 422},
		{"priority low", "POST", "/v1/queues/q/messages", "application/json", `{"payload":1,"priority":-1}`, 422},
		{"no payload", "POST", "/v1/queues/q/messages", "application/json", `{"priority":1}`, 422},
		{"neg delay", "POST", "/v1/queues/q/messages", "application/json", `{"payload":1,"delay":"-1s"}`, 422},
		{"reserved header", "POST", "/v1/queues/q/messages", "application/json", `{"payload":1,"headers":{"Nats-Msg-Id":"x"}}`, 422},
		{"bad id", "POST", "/v1/queues/q/messages", "application/json", `{"payload":1,"id":"a b"}`, 422},
		{"both forms", "POST", "/v1/queues/q/messages", "application/json", `{"payload":1,"messages":[{"payload":2}]}`, 422},
		{"empty batch", "POST", "/v1/queues/q/messages", "application/json", `{"messages":[]}`, 422},
		{"batch with bad one", "POST", "/v1/queues/q/messages", "application/json", `{"messages":[{"payload":1},{"payload":1,"priority":99}]}`, 422},
		{"batch unknown field", "POST", "/v1/queues/q/messages", "application/json", `{"messages":[{"payload":1,"x":1}]}`, 400},
		{"syntax", "POST", "/v1/queues/q/messages", "application/json", `{"payload":`, 400},
		{"empty body", "POST", "/v1/queues/q/messages", "application/json", ``, 400},
		{"receive max", "POST", "/v1/queues/q/receive", "application/json", `{"max":101}`, 422},
		{"receive wait", "POST", "/v1/queues/q/receive", "application/json", `{"wait":"2m"}`, 422},
		{"receive visibility", "POST", "/v1/queues/q/receive", "application/json", `{"visibilityTimeout":"13h"}`, 422},
		{"receive visibility short", "POST", "/v1/queues/q/receive", "application/json", `{"visibilityTimeout":"10ms"}`, 422},
		{"receive unknown", "POST", "/v1/queues/nope/receive", "application/json", `{}`, 404},
		{"ack none", "POST", "/v1/queues/q/ack", "application/json", `{"receipts":[]}`, 422},
		{"ack forged", "POST", "/v1/queues/q/ack", "application/json", `{"receipts":["abc.def"]}`, 400},
		{"ack mixed", "POST", "/v1/queues/q/ack", "application/json", `{"receipts":["` + receipt + `","x.y"]}`, 400},
		{"nack no receipt", "POST", "/v1/queues/q/nack", "application/json", `{"error":"x"}`, 422},
		{"nack forged", "POST", "/v1/queues/q/nack", "application/json", `{"receipt":"` + receipt[:len(receipt)-3] + `AAA"}`, 400},
		{"nack bad delay", "POST", "/v1/queues/q/nack", "application/json", `{"receipt":"` + receipt + `","delay":"-1s"}`, 422},
		{"extend forged", "POST", "/v1/queues/q/extend", "application/json", `{"receipts":["x"]}`, 400},
		{"dead letters limit", "GET", "/v1/queues/q/dead-letters?limit=0", "", "", 400},
		{"dead letters unknown", "GET", "/v1/queues/nope/dead-letters", "", "", 404},
		{"redrive empty ids", "POST", "/v1/queues/q/dead-letters/redrive", "application/json", `{"ids":[]}`, 422},
		{"redrive unknown", "POST", "/v1/queues/nope/dead-letters/redrive", "application/json", `{}`, 404},
		{"purge unknown", "DELETE", "/v1/queues/nope/dead-letters", "", "", 404},
	}
	for _, tc := range cases {
		st, m, b := httpClient{t: t, base: h.base}.do(tc.method, tc.path, tc.ctype, tc.body)
		if st != tc.status || m["status"] != float64(tc.status) || m["detail"] == "" {
			t.Errorf("%s: %d %s, want %d", tc.name, st, b, tc.status)
		}
	}
	after := f.stats("q")
	if after.QueueSize != before.QueueSize || after.InFlight != 1 || !reflect.DeepEqual(after.Config, before.Config) || after.Delayed != 0 {
		t.Fatalf("bad input changed the queue: before %+v after %+v", before, after)
	}
	if _, err := f.c.Stats(f.ctx, "nope"); err == nil {
		t.Fatal("a bad request created a queue")
	}
	// The in-flight message is still ours to ack.
	f.ack("q", ds...)
}

func TestHTTPFullQueueIs507(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := httpClient{t: t, base: f.server().URL}
	h.json("PUT", "/v1/queues/tiny", `{"maxSize":1,"overflow":"reject"}`)
	if st, _, _ := h.json("POST", "/v1/queues/tiny/messages", `{"payload":1}`); st != 201 {
		t.Fatal(st)
	}
	if st, _, b := h.json("POST", "/v1/queues/tiny/messages", `{"payload":2}`); st != 507 {
		t.Fatalf("%d %s", st, b)
	}
}

func TestHTTPReceiveLongPollWakesOnPublish(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := httpClient{t: t, base: f.server().URL}
	f.create("poll", Config{})
	f.c.opts.PollInterval = time.Hour // only the doorbell can wake it
	// The receives wait up to 60s; a request that is not answered within
	// 30s (a receive the publish did not wake) fails on the client's
	// timeout. No speed is measured: only whether the publish woke it.
	woken := httpClient{t: t, base: h.base, timeout: 30 * time.Second}
	go func() {
		time.Sleep(200 * time.Millisecond)
		if _, err := f.c.Publish(f.ctx, "poll", Message{Payload: []byte(`"hi"`)}); err != nil {
			t.Error(err)
		}
	}()
	st, m, b := woken.json("POST", "/v1/queues/poll/receive", `{"wait":"60s"}`)
	if st != 200 || len(m["messages"].([]any)) != 1 {
		t.Fatalf("%d %s", st, b)
	}
	// With two priority levels in use the wait is the doorbell's.
	f.publish("poll", Message{Payload: []byte(`1`), Priority: 5})
	f.ack("poll", f.receive("poll", 1, time.Second)...)
	go func() {
		time.Sleep(200 * time.Millisecond)
		if _, err := f.c.Publish(f.ctx, "poll", Message{Payload: []byte(`"p0"`)}); err != nil {
			t.Error(err)
		}
	}()
	st, m, b = woken.json("POST", "/v1/queues/poll/receive", `{"wait":"60s"}`)
	if st != 200 || len(m["messages"].([]any)) != 1 {
		t.Fatalf("doorbell: %d %s", st, b)
	}
	// Empty after wait.
	start := time.Now()
	st, m, _ = h.json("POST", "/v1/queues/poll/receive", `{"wait":"200ms"}`)
	if st != 200 || len(m["messages"].([]any)) != 0 || time.Since(start) < 200*time.Millisecond {
		t.Fatalf("empty receive %d %v", st, m)
	}
}

func FuzzDecodePublish(f *testing.F) {
	for _, s := range []string{
		`{"payload":{"a":1},"priority":2,"id":"j1","headers":{"X-T":"1"}}`,
		`{"messages":[{"payload":"x"},{"payload":[1],"delay":"1h"}]}`,
		`{"payload":1,"priority":10}`, `{"payload":1,"delay":"-1s"}`, `{"messages":[]}`,
		`{"payload":1,"headers":{"Nats-X":"1"}}`, `{"payload":`, `null`, `[]`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		msgs, batch, p := DecodePublish(body)
		if p != nil {
			if p.Status != 400 && p.Status != 422 || msgs != nil {
				t.Fatalf("problem %+v with %d messages", p, len(msgs))
			}
			return
		}
		if len(msgs) == 0 || len(msgs) > maxBatch || (!batch && len(msgs) != 1) {
			t.Fatalf("%d messages, batch %v", len(msgs), batch)
		}
		for _, m := range msgs {
			if err := m.Validate(); err != nil || len(m.Payload) == 0 || !json.Valid(m.Payload) {
				t.Fatalf("accepted invalid message %+v: %v", m, err)
			}
		}
		_ = bytes.Clone(body)
	})
}

// TestHTTPReceiveAcksThePreviousBatch: a receive may acknowledge the
// receipts of the previous one in the same round trip; a stale receipt
// among them fails the call and nothing is acknowledged or received.
func TestHTTPReceiveAcksThePreviousBatch(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := httpClient{t: t, base: f.server().URL}
	f.create("combo", Config{RetryDelay: new(time.Duration(0)), RetryAttempts: 10})
	for i := range 4 {
		f.publish("combo", Message{Payload: []byte(fmt.Sprint(i))})
	}
	receiptsOf := func(m map[string]any) []string {
		var out []string
		for _, x := range m["messages"].([]any) {
			out = append(out, `"`+x.(map[string]any)["receipt"].(string)+`"`)
		}
		return out
	}
	_, m, _ := h.json("POST", "/v1/queues/combo/receive", `{"max":2,"wait":"1s"}`)
	first := receiptsOf(m)
	st, m, b := h.json("POST", "/v1/queues/combo/receive", `{"max":2,"wait":"1s","ack":[`+strings.Join(first, ",")+`]}`)
	if st != 200 || len(m["messages"].([]any)) != 2 {
		t.Fatalf("receive with acks: %d %s", st, b)
	}
	second := receiptsOf(m)
	if s := h.statsOf("combo"); s["processedMessages"] != 2.0 || s["queueSize"] != 2.0 || s["inFlight"] != 2.0 {
		t.Fatalf("after the first batch's acks: %v", s)
	}
	// A nacked receipt in "ack": the call fails before receiving.
	h.json("POST", "/v1/queues/combo/nack", `{"receipt":`+second[0]+`}`)
	st, _, b = h.json("POST", "/v1/queues/combo/receive", `{"max":2,"wait":"1s","ack":[`+second[1]+`,`+second[0]+`]}`)
	if st != 409 || !strings.Contains(b, "receipt-stale") {
		t.Fatalf("receive with a stale ack: %d %s", st, b)
	}
	if s := h.statsOf("combo"); s["processedMessages"] != 2.0 || s["inFlight"] != 1.0 {
		t.Fatalf("a failed receive changed something: %v", s)
	}
	if st, _, b := h.json("POST", "/v1/queues/combo/receive", `{"ack":[`+strings.Repeat(`"x",`, 1000)+`"x"]}`); st != 422 {
		t.Fatalf("1001 acks: %d %s", st, b)
	}
}

// A receive whose client leaves during the long poll ends then, on both
// HTTP servers the API runs on (net/http, and internal/h1 as on the admin
// listener): it fetches nothing for the gone client, so the next message
// goes to the next receive, on its first attempt.
func TestHTTPReceiveEndsWhenClientLeaves(t *testing.T) {
	t.Parallel()
	for _, srv := range []string{"net/http", "h1"} {
		t.Run(strings.ReplaceAll(srv, "/", "-"), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.create("leave", Config{VisibilityTimeout: time.Hour})
			returned := make(chan struct{}, 1)
			api := NewAPI(f.c, APIConfig{}).Handler()
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				api.ServeHTTP(w, r)
				if strings.HasSuffix(r.URL.Path, "/receive") {
					returned <- struct{}{}
				}
			})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			if srv == "h1" {
				s := httpguard.NewH1Server(h, httpguard.Limits{}, nil, nil)
				go func() { _ = s.Serve(ln) }()
				t.Cleanup(func() { _ = s.Close() })
			} else {
				s := httpguard.NewServer(h, httpguard.Limits{})
				go func() { _ = s.Serve(ln) }()
				t.Cleanup(func() { _ = s.Close() })
			}
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			body := `{"wait":"50s"}`
			_, _ = fmt.Fprintf(c, "POST /v1/queues/leave/receive HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
			_ = c.Close()
			select {
			case <-returned:
			case <-time.After(20 * time.Second):
				t.Fatal("the receive went on waiting after its client left")
			}
			f.publish("leave", Message{ID: "m", Payload: []byte(`1`)})
			st, m, b := httpClient{t: t, base: "http://" + ln.Addr().String()}.json("POST", "/v1/queues/leave/receive", `{"wait":"10s"}`)
			msgs, _ := m["messages"].([]any)
			if st != 200 || len(msgs) != 1 || msgs[0].(map[string]any)["attempts"] != 1.0 {
				t.Fatalf("receive after the gone one: %d %s", st, b)
			}
		})
	}
}
