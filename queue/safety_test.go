package queue

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/internal/enginetest"
	"github.com/plexushq/plexus/internal/httpxtest"
)

func receipt(t *testing.T, m map[string]any) string {
	t.Helper()
	msgs, _ := m["messages"].([]any)
	if len(msgs) != 1 {
		t.Fatalf("want one message: %v", m)
	}
	return msgs[0].(map[string]any)["receipt"].(string)
}

func (h httpClient) statsOf(q string) map[string]any {
	h.t.Helper()
	st, m, b := h.json("GET", "/v1/queues/"+q, "")
	if st != 200 {
		h.t.Fatalf("stats %d %s", st, b)
	}
	return m
}

// TestStaleReceiptRefused: after A nacks and B receives the message, A's
// receipt acked B's delivery (the message gone, B's failure never
// retried) and a repeated nack handed it to a third receiver while B held
// it. Every use of an older delivery's receipt is 409 receipt-stale now and
// changes nothing.
func TestStaleReceiptRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := httpClient{t: t, base: f.server().URL}
	if st, _, b := h.json("PUT", "/v1/queues/race", `{"visibilityTimeout":"30s","retryDelay":"1ms","retryAttempts":10}`); st != 201 {
		t.Fatalf("create %d %s", st, b)
	}
	h.json("POST", "/v1/queues/race/messages", `{"payload":1,"id":"m1"}`)
	_, m, _ := h.json("POST", "/v1/queues/race/receive", `{"wait":"1s"}`)
	a := receipt(t, m)
	if st, _, b := h.json("POST", "/v1/queues/race/nack", `{"receipt":"`+a+`","error":"a failed"}`); st != 200 {
		t.Fatalf("nack %d %s", st, b)
	}
	_, m, _ = h.json("POST", "/v1/queues/race/receive", `{"wait":"5s"}`)
	b := receipt(t, m)
	for _, tc := range []struct{ path, body string }{
		{"ack", `{"receipts":["` + a + `"]}`},
		{"nack", `{"receipt":"` + a + `","error":"again"}`},
		{"extend", `{"receipts":["` + a + `"]}`},
		{"ack", `{"receipts":["` + b + `","` + a + `"]}`}, // a batch with one stale receipt changes nothing
	} {
		code, hdr, body := post(t, h.base+"/v1/queues/race/"+tc.path, tc.body)
		if p := httpxtest.Problem(t, http.StatusConflict, hdr, body); code != 409 || !strings.HasSuffix(p.Type, "receipt-stale") {
			t.Fatalf("%s with A's receipt: %d %s", tc.path, code, body)
		}
	}
	// B still holds it: nobody else receives it, and B's ack takes it.
	if _, m, _ := h.json("POST", "/v1/queues/race/receive", `{"wait":"200ms"}`); len(m["messages"].([]any)) != 0 {
		t.Fatalf("a third receiver got the message B holds: %v", m)
	}
	if st, _, body := h.json("POST", "/v1/queues/race/ack", `{"receipts":["`+b+`"]}`); st != 200 {
		t.Fatalf("B's ack %d %s", st, body)
	}
	s := h.statsOf("race")
	if s["processedMessages"] != 1.0 || s["queueSize"] != 0.0 || s["deadLetterQueueSize"] != 0.0 {
		t.Fatalf("stats %v", s)
	}
}

// TestCountersCountMessages: repeating an ack (a client retrying after a
// lost answer) is harmless and no longer inflates processedMessages;
// publishing the same id twice stores and counts one message.
func TestCountersCountMessages(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := httpClient{t: t, base: f.server().URL}
	h.json("PUT", "/v1/queues/count", `{}`)
	for range 2 {
		if st, _, b := h.json("POST", "/v1/queues/count/messages", `{"payload":1,"id":"same"}`); st != 201 {
			t.Fatalf("publish %d %s", st, b)
		}
	}
	_, m, _ := h.json("POST", "/v1/queues/count/receive", `{"wait":"1s"}`)
	r := receipt(t, m)
	for i := range 3 {
		if st, _, b := h.json("POST", "/v1/queues/count/ack", `{"receipts":["`+r+`"]}`); st != 200 {
			t.Fatalf("ack %d: %d %s", i, st, b)
		}
	}
	s := h.statsOf("count")
	if s["processedMessages"] != 1.0 || s["publishedMessages"] != 1.0 {
		t.Fatalf("published %v, processed %v: want 1 and 1", s["publishedMessages"], s["processedMessages"])
	}
}

// TestRetryDelayZeroMeansZero: "retryDelay": "0s" silently became 5s.
func TestRetryDelayZeroMeansZero(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := httpClient{t: t, base: f.server().URL}
	if st, m, b := h.json("PUT", "/v1/queues/now", `{"retryDelay":"0s","visibilityTimeout":"1m"}`); st != 201 ||
		m["config"].(map[string]any)["retryDelay"] != "0s" {
		t.Fatalf("create %d %s", st, b)
	}
	if st, m, b := h.json("GET", "/v1/queues/now", ""); st != 200 || m["config"].(map[string]any)["retryDelay"] != "0s" {
		t.Fatalf("read back %d %s", st, b)
	}
	h.json("POST", "/v1/queues/now/messages", `{"payload":1}`)
	_, m, _ := h.json("POST", "/v1/queues/now/receive", `{"wait":"1s"}`)
	h.json("POST", "/v1/queues/now/nack", `{"receipt":"`+receipt(t, m)+`"}`)
	_, m, b := h.json("POST", "/v1/queues/now/receive", `{"wait":"3s"}`)
	if msgs, _ := m["messages"].([]any); len(msgs) != 1 || msgs[0].(map[string]any)["attempts"] != 2.0 {
		t.Fatalf("a nacked message with retryDelay 0 was not back within 3s: %s", b)
	}
	// Leaving it out still means the default.
	if _, m, _ := h.json("PUT", "/v1/queues/dflt", `{}`); m["config"].(map[string]any)["retryDelay"] != "5s" {
		t.Fatalf("default %v", m["config"])
	}
}

// TestQueueCountCapped: there was no bound on the number of queues.
func TestQueueCountCapped(t *testing.T) {
	t.Parallel()
	f := newFixtureOpts(t, func(o *Options) { o.MaxQueues = 4 })
	h := httpClient{t: t, base: f.server().URL}
	for _, q := range []string{"q1", "q2"} { // each with its dead-letter queue
		if st, _, b := h.json("PUT", "/v1/queues/"+q, `{}`); st != 201 {
			t.Fatalf("create %s: %d %s", q, st, b)
		}
	}
	st, m, b := h.json("PUT", "/v1/queues/q3", `{}`)
	if st != 409 || !strings.HasSuffix(m["type"].(string), "too-many-queues") {
		t.Fatalf("fifth and sixth queue: %d %s", st, b)
	}
	if st, _, _ := h.json("GET", "/v1/queues/q3", ""); st != 404 {
		t.Fatalf("refused queue exists: %d", st)
	}
	if st, _, b := h.json("PUT", "/v1/queues/q1", `{"maxSize":5}`); st != 200 {
		t.Fatalf("updating an existing queue at the cap: %d %s", st, b)
	}
}

// TestReceiveWithItsOwnVisibilityTimeout: a receive may ask for a
// visibility timeout other than the queue's, shorter or longer.
func TestReceiveWithItsOwnVisibilityTimeout(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := httpClient{t: t, base: f.server().URL}
	h.json("PUT", "/v1/queues/vt", `{"visibilityTimeout":"1s","retryAttempts":10}`)
	h.json("POST", "/v1/queues/vt/messages", `{"payload":"long"}`)
	_, m, b := h.json("POST", "/v1/queues/vt/receive", `{"wait":"1s","visibilityTimeout":"1m"}`)
	long := receipt(t, m)
	// Twice the queue's own timeout later it is still invisible.
	time.Sleep(2500 * time.Millisecond)
	if _, m, _ := h.json("POST", "/v1/queues/vt/receive", `{"wait":"0s"}`); len(m["messages"].([]any)) != 0 {
		t.Fatalf("a message received for 1m came back after 2.5s: %v (first receive %s)", m, b)
	}
	if st, m, b := h.json("POST", "/v1/queues/vt/extend", `{"receipts":["`+long+`"]}`); st != 200 || len(m["receipts"].([]any)) != 1 {
		t.Fatalf("extend %d %s", st, b)
	}
	h.json("PUT", "/v1/queues/vt2", `{"visibilityTimeout":"1m","retryAttempts":10}`)
	h.json("POST", "/v1/queues/vt2/messages", `{"payload":"short"}`)
	h.json("POST", "/v1/queues/vt2/receive", `{"wait":"1s","visibilityTimeout":"500ms"}`)
	_, m, b = h.json("POST", "/v1/queues/vt2/receive", `{"wait":"10s"}`)
	if msgs, _ := m["messages"].([]any); len(msgs) != 1 || msgs[0].(map[string]any)["attempts"] != 2.0 {
		t.Fatalf("a message received for 500ms on a 1m queue was not back within 10s: %s", b)
	}
	if st, _, b := h.json("POST", "/v1/queues/vt2/receive", `{"visibilityTimeout":"50ms"}`); st != 422 {
		t.Fatalf("50ms: %d %s", st, b)
	}
}

// TestInFlightCountsWhatIsHeldNow: a received-but-abandoned message
// counted as in flight forever; it stops once its visibility timeout ends.
func TestInFlightCountsWhatIsHeldNow(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := httpClient{t: t, base: f.server().URL}
	h.json("PUT", "/v1/queues/held", `{"visibilityTimeout":"1s"}`)
	h.json("POST", "/v1/queues/held/messages", `{"messages":[{"payload":1},{"payload":2}]}`)
	_, m, _ := h.json("POST", "/v1/queues/held/receive", `{"wait":"1s","max":1}`)
	r := receipt(t, m)
	if s := h.statsOf("held"); s["inFlight"] != 1.0 || s["queueSize"] != 2.0 {
		t.Fatalf("after receive: %v", s)
	}
	waitUntil(t, 20*time.Second, func() bool { return h.statsOf("held")["inFlight"] == 0.0 })
	// Acked deliveries stop counting at once.
	_, m, _ = h.json("POST", "/v1/queues/held/receive", `{"wait":"1s","max":2,"visibilityTimeout":"1m"}`)
	msgs := m["messages"].([]any)
	if s := h.statsOf("held"); s["inFlight"] != float64(len(msgs)) {
		t.Fatalf("after second receive of %d: %v", len(msgs), s)
	}
	var rs []string
	for _, x := range msgs {
		rs = append(rs, `"`+x.(map[string]any)["receipt"].(string)+`"`)
	}
	h.json("POST", "/v1/queues/held/ack", `{"receipts":[`+strings.Join(rs, ",")+`]}`)
	if s := h.statsOf("held"); s["inFlight"] != 0.0 || s["queueSize"] != 0.0 {
		t.Fatalf("after ack: %v (old receipt %s…)", s, r[:8])
	}
}

// TestConcurrentDropOldestPublishers: six publishers on a full drop-oldest
// queue of 50: most publishes failed with 500 and a message was
// dead-lettered several times. Every publish succeeds now, each dropped
// message is dead-lettered once with reason overflow, and the queue never
// holds more than maxSize.
func TestConcurrentDropOldestPublishers(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := httpClient{t: t, base: f.server().URL}
	h.json("PUT", "/v1/queues/drop", `{"maxSize":50}`)
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := map[string]int{}
	for p := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				code, _, body := post(t, h.base+"/v1/queues/drop/messages", fmt.Sprintf(`{"payload":%d,"id":"p%d-%d"}`, i, p, i))
				if code != 201 {
					mu.Lock()
					failed[fmt.Sprintf("%d %s", code, body)]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("failed publishes: %v", failed)
	}
	s := h.statsOf("drop")
	dls, err := f.c.DeadLetters(f.ctx, "drop", 1000)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, d := range dls {
		seen[d.ID]++
		if d.Reason != ReasonOverflow {
			t.Fatalf("dead letter %s with reason %q", d.ID, d.Reason)
		}
	}
	var dups []string
	for id, n := range seen {
		if n > 1 {
			dups = append(dups, id)
		}
	}
	sort.Strings(dups)
	t.Logf("published 600, queue %v, dead-lettered %d (%d distinct), dead-lettered counter %v", s["queueSize"], len(dls), len(seen), s["deadLetteredMessages"])
	if len(dups) > 0 || s["queueSize"] != 50.0 || len(dls) != 550 || s["deadLetteredMessages"] != 550.0 {
		t.Fatalf("queue %v, %d dead letters, duplicates %v, counter %v", s["queueSize"], len(dls), dups, s["deadLetteredMessages"])
	}
}

// TestPublishRefusedWhileStorageFull: below the engine's disk reserve a
// publish is 507 and stores nothing.
func TestPublishRefusedWhileStorageFull(t *testing.T) {
	t.Parallel()
	eng := enginetest.StartConfig(t, engine.Config{DiskReserve: -1})
	f := newFixtureOn(t, eng, func(o *Options) {})
	h := httpClient{t: t, base: f.server().URL}
	h.json("PUT", "/v1/queues/full", `{}`)
	full := true
	f.c.opts.Writable = func() error {
		if full {
			return fmt.Errorf("%w: test", engine.ErrStorageFull)
		}
		return nil
	}
	code, hdr, body := post(t, h.base+"/v1/queues/full/messages", `{"payload":1}`)
	if p := httpxtest.Problem(t, http.StatusInsufficientStorage, hdr, body); code != 507 || !strings.HasSuffix(p.Type, "storage-full") {
		t.Fatalf("%d %s", code, body)
	}
	if s := h.statsOf("full"); s["queueSize"] != 0.0 {
		t.Fatalf("stored while full: %v", s)
	}
}

// TestInvalidUTF8PayloadRefused: a raw 0xff inside a JSON string was
// stored and echoed as invalid JSON.
func TestInvalidUTF8PayloadRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := httpClient{t: t, base: f.server().URL}
	h.json("PUT", "/v1/queues/utf", `{}`)
	code, hdr, body := post(t, h.base+"/v1/queues/utf/messages", "{\"payload\":\"a\xffb\"}")
	if p := httpxtest.Problem(t, http.StatusBadRequest, hdr, body); code != 400 || !strings.Contains(p.Detail, "UTF-8") {
		t.Fatalf("%d %s", code, body)
	}
	if s := h.statsOf("utf"); s["queueSize"] != 0.0 {
		t.Fatalf("stored: %v", s)
	}
}

// TestEngineGoneAnswers503WithRetryHint: queue API errors from the engine
// were a bare, unlogged 500.
func TestEngineGoneAnswers503WithRetryHint(t *testing.T) {
	t.Parallel()
	eng, srv := enginetest.StartExternal(t, engine.Config{})
	f := newFixtureOn(t, eng, func(o *Options) {})
	api := httptestServer(t, NewAPI(f.c, APIConfig{RequestTimeout: 300 * time.Millisecond}))
	h := httpClient{t: t, base: api}
	h.json("PUT", "/v1/queues/gone", `{}`)
	srv.Shutdown()
	srv.WaitForShutdown()
	code, hdr, body := post(t, api+"/v1/queues/gone/messages", `{"payload":1}`)
	if p := httpxtest.Retry(t, http.StatusServiceUnavailable, hdr, body); code != 503 || !strings.HasSuffix(p.Type, "engine-unavailable") {
		t.Fatalf("%d %s", code, body)
	}
}

func waitUntil(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
