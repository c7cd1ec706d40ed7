package eventstore_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/eventstore"
	"github.com/plexushq/plexus/internal/enginetest"
	"github.com/plexushq/plexus/internal/httpx"
	"github.com/plexushq/plexus/internal/httpxtest"
)

func raw(t *testing.T, method, url, body string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	hc := &http.Client{Timeout: 30 * time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// TestInvalidUTF8DataRefused: a raw 0xff inside a JSON string was stored
// and echoed, so strict readers of /v1/events broke. It is a 400 now and
// nothing is stored; the Go API refuses it too.
func TestInvalidUTF8DataRefused(t *testing.T) {
	a := startAPI(t, eventstore.APIConfig{})
	code, h, body := raw(t, "POST", a.url+"/v1/streams/user-1/events", "{\"events\":[{\"type\":\"user.created\",\"data\":{\"name\":\"a\xffb\"}}]}")
	if p := httpxtest.Problem(t, http.StatusBadRequest, h, body); code != 400 || !strings.Contains(p.Detail, "UTF-8") {
		t.Fatalf("%d %s", code, body)
	}
	if v, _, err := a.s.Version(ctxT(t), "user-1"); err != nil || v != 0 {
		t.Fatalf("stream version %d (%v): something was stored", v, err)
	}
	_, err := a.s.Append(ctxT(t), "user-1", eventstore.AnyVersion,
		eventstore.Event{Type: "user.created", Data: []byte("{\"name\":\"a\xffb\"}")})
	if !errors.Is(err, eventstore.ErrInvalid) {
		t.Fatalf("Go append of invalid UTF-8: %v", err)
	}
}

// TestAppendWithEngineGoneAnswers503InTime: appends waited on the
// request's context, which had no deadline; with the engine gone they hung
// for as long as the client waited. Now the request deadline ends them with
// a 503 and a retry hint.
func TestAppendWithEngineGoneAnswers503InTime(t *testing.T) {
	eng, srv := enginetest.StartExternal(t, engine.Config{})
	s := startStore(t, eng, eventstore.Config{})
	api := httptest.NewServer(eventstore.NewAPI(s, eventstore.APIConfig{RequestTimeout: 300 * time.Millisecond}).Handler())
	defer api.Close()
	mustAppend(t, s, "user-2", eventstore.NoStream, ev("user.created", 1))
	srv.Shutdown()
	srv.WaitForShutdown()
	start := time.Now()
	code, h, body := raw(t, "POST", api.URL+"/v1/streams/user-2/events", `{"expectedVersion":1,"events":[{"type":"user.updated"}]}`)
	p := httpxtest.Retry(t, http.StatusServiceUnavailable, h, body)
	if code != 503 || p.Type != httpx.ProblemTypeBase+"engine-unavailable" || time.Since(start) > 10*time.Second {
		t.Fatalf("%d %s after %s", code, body, time.Since(start))
	}
}

// TestAppendRefusedWhileStorageFull: below the engine's disk reserve an
// append is 507 and stores nothing; reads go on.
func TestAppendRefusedWhileStorageFull(t *testing.T) {
	eng := enginetest.StartConfig(t, engine.Config{DiskReserve: 1 << 60})
	s := startStore(t, eng, eventstore.Config{})
	api := httptest.NewServer(eventstore.NewAPI(s, eventstore.APIConfig{}).Handler())
	defer api.Close()
	code, h, body := raw(t, "POST", api.URL+"/v1/streams/user-3/events", `{"events":[{"type":"user.created"}]}`)
	if p := httpxtest.Problem(t, http.StatusInsufficientStorage, h, body); code != 507 || p.Type != httpx.ProblemTypeBase+"storage-full" {
		t.Fatalf("%d %s", code, body)
	}
	if code, _, body := raw(t, "GET", api.URL+"/v1/events", ""); code != 200 || !strings.Contains(string(body), `"events":[]`) {
		t.Fatalf("read while full: %d %s", code, body)
	}
	// The HTTP client reports it as the engine's error value.
	_, err := eventstore.NewClient(api.URL, "", nil).Append(ctxT(t), "user-3", eventstore.AnyVersion, ev("user.created", 1))
	if !errors.Is(err, engine.ErrStorageFull) {
		t.Fatalf("client append while full: %v", err)
	}
}

// eventConsumers counts the consumers on the events stream.
func eventConsumers(t *testing.T, js jetstream.JetStream) int {
	t.Helper()
	st, err := js.Stream(ctxT(t), engine.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	return st.CachedInfo().State.Consumers
}

// TestClosedSubscriptionLeavesNoConsumer: a subscriber that disconnects
// took its server-side consumer with it only after the engine's five
// minute inactivity threshold, so reconnect cycles piled consumers up.
// Each is removed at once now.
func TestClosedSubscriptionLeavesNoConsumer(t *testing.T) {
	eng := enginetest.Start(t)
	s := startStore(t, eng, eventstore.Config{})
	api := httptest.NewServer(eventstore.NewAPI(s, eventstore.APIConfig{}).Handler())
	defer api.Close()
	mustAppend(t, s, "chat-1", eventstore.NoStream, ev("chat.said", 1))
	for i := range 50 {
		r := openSSE(t, api.URL+"/v1/events/subscribe", "")
		if _, _, err := r.next(); err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		r.resp.Body.Close()
	}
	waitFor(t, func() bool { return eventConsumers(t, eng.JetStream()) == 0 })
}

// TestSubscriptionsCappedPerNode: past the node's cap a subscription is a
// 503 with a retry hint, and a slot frees when a subscriber leaves.
func TestSubscriptionsCappedPerNode(t *testing.T) {
	a := startAPI(t, eventstore.APIConfig{Streams: httpx.NewSlots(2)})
	r1 := openSSE(t, a.url+"/v1/events/subscribe", "")
	openSSE(t, a.url+"/v1/events/subscribe", "")
	code, h, body := raw(t, "GET", a.url+"/v1/events/subscribe", "")
	if p := httpxtest.Retry(t, http.StatusServiceUnavailable, h, body); code != 503 || p.Type != httpx.ProblemTypeBase+"too-many-subscribers" {
		t.Fatalf("third subscription: %d %s", code, body)
	}
	r1.resp.Body.Close()
	waitFor(t, func() bool {
		resp, err := http.Get(a.url + "/v1/events/subscribe?fromPosition=end")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// TestTailBufferIsBounded: a subscriber that stops reading holds at most a
// bounded number of appends on the node (flow control); catching up no
// longer buffers hundreds of events per subscriber.
func TestTailBufferIsBounded(t *testing.T) {
	eng := enginetest.Start(t)
	s := startStore(t, eng, eventstore.Config{})
	for i := range 200 { // one engine message each
		mustAppend(t, s, "bulk-1", int64(i), ev("bulk.added", i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.Tail(ctx, eventstore.Query{}, func(eventstore.Envelope) error {
			select {
			case <-first:
			default:
				close(first)
			}
			<-ctx.Done() // a subscriber that does not keep up
			return ctx.Err()
		})
	}()
	<-first
	time.Sleep(500 * time.Millisecond) // let the engine push whatever it will
	st, err := eng.JetStream().Stream(ctxT(t), engine.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	var delivered uint64
	for ci := range st.ListConsumers(ctxT(t)).Info() {
		delivered = max(delivered, ci.Delivered.Consumer)
	}
	cancel()
	<-done
	if delivered == 0 || delivered > 1+eventstore.TailBuffer {
		t.Fatalf("the engine delivered %d appends to a subscriber stuck on the first; want at most %d", delivered, 1+eventstore.TailBuffer)
	}
}
