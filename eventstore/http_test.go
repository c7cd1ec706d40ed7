package eventstore_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/plexushq/plexus/eventstore"
	"github.com/plexushq/plexus/internal/httpx"
)

type apiEnv struct {
	s        *eventstore.Store
	url      string
	stopping chan struct{}
}

func startAPI(t *testing.T, cfg eventstore.APIConfig) *apiEnv {
	t.Helper()
	s := startStore(t, nil, eventstore.Config{})
	stopping := make(chan struct{})
	srv := httptest.NewUnstartedServer(eventstore.NewAPI(s, cfg).Handler())
	srv.Config.BaseContext = func(net.Listener) context.Context {
		return httpx.WithStopping(context.Background(), stopping)
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return &apiEnv{s: s, url: srv.URL, stopping: stopping}
}

func call(t *testing.T, method, url, contentType, body string) (int, map[string]any, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s %s: answer %q is not a JSON object", method, url, b)
		}
	}
	return resp.StatusCode, m, resp.Header
}

func TestHTTPAppendReadSnapshot(t *testing.T) {
	a := startAPI(t, eventstore.APIConfig{})
	st, m, _ := call(t, "POST", a.url+"/v1/streams/user-7/events", "application/json",
		`{"expectedVersion":0,"events":[{"type":"user.created","data":{"name":"ann"},"source":"web"},{"type":"user.login","data":null}]}`)
	if st != 201 || m["version"] != 2.0 || m["position"] == nil {
		t.Fatalf("append: %d %v", st, m)
	}
	loginPos := m["position"].(float64)
	st, m, h := call(t, "POST", a.url+"/v1/streams/user-7/events", "application/json",
		`{"expectedVersion":1,"events":[{"type":"user.logout","data":{}}]}`)
	if st != 409 || m["currentVersion"] != 2.0 || h.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("conflict: %d %v", st, m)
	}
	st, m, _ = call(t, "POST", a.url+"/v1/streams/user-7/events", "", `{"events":[{"type":"user.logout"}]}`)
	if st != 201 || m["version"] != 3.0 {
		t.Fatalf("append without expectedVersion: %d %v", st, m)
	}
	logoutPos := m["position"].(float64)
	st, m, _ = call(t, "GET", a.url+"/v1/streams/user-7/events?fromVersion=2&limit=10", "", "")
	evs, _ := m["events"].([]any)
	if st != 200 || len(evs) != 2 {
		t.Fatalf("read stream: %d %v", st, m)
	}
	first := evs[0].(map[string]any)
	for _, k := range []string{"id", "type", "stream", "version", "position", "data", "metadata", "source", "correlationId", "causationId", "timestamp"} {
		if _, ok := first[k]; !ok {
			t.Fatalf("envelope lacks %q: %v", k, first)
		}
	}
	if first["version"] != 2.0 || first["type"] != "user.login" || first["stream"] != "user-7" || first["position"] != loginPos {
		t.Fatalf("envelope: %v", first)
	}
	st, m, _ = call(t, "GET", a.url+"/v1/streams/user-7/events?direction=backward&limit=1", "", "")
	if evs, _ := m["events"].([]any); st != 200 || len(evs) != 1 || evs[0].(map[string]any)["version"] != 3.0 {
		t.Fatalf("backward: %d %v", st, m)
	}
	if st, _, _ := call(t, "GET", a.url+"/v1/streams/user-404/events", "", ""); st != 404 {
		t.Fatalf("unknown stream: %d", st)
	}
	st, m, _ = call(t, "GET", a.url+"/v1/events?fromPosition=0&types=user.login,user.logout&category=user&limit=1", "", "")
	if evs, _ := m["events"].([]any); st != 200 || len(evs) != 1 || m["nextPosition"] != loginPos+1 {
		t.Fatalf("read all: %d %v", st, m)
	}
	st, m, _ = call(t, "GET", a.url+"/v1/events?since="+time.Now().Add(time.Hour).Format(time.RFC3339Nano), "", "")
	if evs, _ := m["events"].([]any); st != 200 || len(evs) != 0 {
		t.Fatalf("since the future: %d %v", st, m)
	}
	st, m, _ = call(t, "GET", a.url+"/v1/streams/user-7", "", "")
	if st != 200 || m["version"] != 3.0 || m["category"] != "user" {
		t.Fatalf("stream info: %d %v", st, m)
	}

	if st, _, _ := call(t, "GET", a.url+"/v1/streams/user-7/snapshot", "", ""); st != 404 {
		t.Fatalf("no snapshot yet: %d", st)
	}
	st, m, _ = call(t, "PUT", a.url+"/v1/streams/user-7/snapshot", "application/json", `{"version":3,"state":{"name":"ann","online":false}}`)
	if st != 200 || m["version"] != 3.0 || m["position"] != logoutPos {
		t.Fatalf("put snapshot: %d %v", st, m)
	}
	st, m, _ = call(t, "GET", a.url+"/v1/streams/user-7/snapshot", "", "")
	if st != 200 || m["state"].(map[string]any)["name"] != "ann" {
		t.Fatalf("get snapshot: %d %v", st, m)
	}
	if st, _, _ := call(t, "PUT", a.url+"/v1/streams/user-7/snapshot", "application/json", `{"version":9,"state":{}}`); st != 422 {
		t.Fatalf("snapshot past the end: %d", st)
	}
}

func TestHTTPBadInputStoresNothing(t *testing.T) {
	a := startAPI(t, eventstore.APIConfig{MaxBodyBytes: 64 << 10})
	many := `{"events":[` + strings.Repeat(`{"type":"x"},`, eventstore.MaxBatch) + `{"type":"x"}]}`
	for _, tc := range []struct {
		name, path, ct, body string
		want                 int
	}{
		{"wrong content type", "/v1/streams/a-1/events", "text/plain", `{"events":[{"type":"x"}]}`, 415},
		{"malformed JSON", "/v1/streams/a-1/events", "application/json", `{"events":[{"type":"x"}`, 400},
		{"unknown field", "/v1/streams/a-1/events", "application/json", `{"events":[{"type":"x","colour":1}]}`, 400},
		{"trailing data", "/v1/streams/a-1/events", "application/json", `{"events":[{"type":"x"}]} {}`, 400},
		{"empty body", "/v1/streams/a-1/events", "application/json", ``, 400},
		{"no events field", "/v1/streams/a-1/events", "application/json", `{"expectedVersion":0}`, 400},
		{"events not a list", "/v1/streams/a-1/events", "application/json", `{"events":{"type":"x"}}`, 400},
		{"zero events", "/v1/streams/a-1/events", "application/json", `{"events":[]}`, 422},
		{"bad type", "/v1/streams/a-1/events", "application/json", `{"events":[{"type":"has space"}]}`, 422},
		{"missing type", "/v1/streams/a-1/events", "application/json", `{"events":[{"data":1}]}`, 422},
		{"metadata not an object", "/v1/streams/a-1/events", "application/json", `{"events":[{"type":"x","metadata":[1]}]}`, 422},
		{"expected version below -1", "/v1/streams/a-1/events", "application/json", `{"expectedVersion":-2,"events":[{"type":"x"}]}`, 422},
		{"second event bad", "/v1/streams/a-1/events", "application/json", `{"events":[{"type":"x"},{"type":""}]}`, 422},
		{"duplicate ids in one batch", "/v1/streams/a-1/events", "application/json", `{"events":[{"type":"x","id":"1"},{"type":"x","id":"1"}]}`, 422},
		{"too many events", "/v1/streams/a-1/events", "application/json", many, 422},
		{"body too large", "/v1/streams/a-1/events", "application/json", `{"events":[{"type":"x","data":"` + strings.Repeat("a", 70<<10) + `"}]}`, 413},
		{"bad stream name", "/v1/streams/-bad/events", "application/json", `{"events":[{"type":"x"}]}`, 400},
		{"stream name with tilde", "/v1/streams/a~b/events", "application/json", `{"events":[{"type":"x"}]}`, 400},
		{"id with newline", "/v1/streams/a-1/events", "application/json", `{"events":[{"type":"x","id":"a\nb"}]}`, 422},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, m, h := call(t, "POST", a.url+tc.path, tc.ct, tc.body)
			if st != tc.want {
				t.Fatalf("status %d, want %d: %v", st, tc.want, m)
			}
			if h.Get("Content-Type") != "application/problem+json" || m["status"] != float64(tc.want) || m["detail"] == "" {
				t.Fatalf("not a problem answer: %v %v", h, m)
			}
		})
	}
	for _, tc := range []struct{ name, url string }{
		{"limit too large", "/v1/events?limit=5000"},
		{"limit not a number", "/v1/events?limit=ten"},
		{"bad type filter", "/v1/events?types=a%20b"},
		{"bad since", "/v1/events?since=yesterday"},
		{"bad position", "/v1/events?fromPosition=-1"},
		{"bad direction", "/v1/streams/a-1/events?direction=sideways"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, m, _ := call(t, "GET", a.url+tc.url, "", "")
			if st != 400 && st != 422 && st != 404 {
				t.Fatalf("status %d: %v", st, m)
			}
		})
	}
	page, err := a.s.ReadAll(ctxT(t), eventstore.Query{})
	if err != nil || len(page.Events) != 0 {
		t.Fatalf("bad input stored events: %v %v", page.Events, err)
	}
}

// sseReader reads server-sent events.
type sseReader struct {
	resp *http.Response
	br   *bufio.Reader
}

func openSSE(t *testing.T, url, lastID string) *sseReader {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("subscribe: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	t.Cleanup(func() { resp.Body.Close() })
	return &sseReader{resp: resp, br: bufio.NewReader(resp.Body)}
}

// next returns the next event's id and envelope, skipping comments.
func (r *sseReader) next() (string, eventstore.Envelope, error) {
	var id string
	var env eventstore.Envelope
	for {
		line, err := r.br.ReadString('\n')
		if err != nil {
			return "", env, err
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(line, "id: "):
			id = line[4:]
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(line[6:]), &env); err != nil {
				return "", env, err
			}
		case line == "" && id != "":
			return id, env, nil
		}
	}
}

func TestHTTPSubscribeSSE(t *testing.T) {
	a := startAPI(t, eventstore.APIConfig{Heartbeat: 100 * time.Millisecond})
	var chat []uint64
	for i := range 3 {
		chat = append(chat, mustAppend(t, a.s, "chat-1", int64(i), ev("chat.said", i)).Position)
	}
	mustAppend(t, a.s, "other-1", 0, ev("other.thing", 0))
	r := openSSE(t, a.url+"/v1/events/subscribe?types=chat.said", "")
	for _, want := range chat {
		id, env, err := r.next()
		if err != nil || id != fmt.Sprint(want) || env.Position != want || env.Type != "chat.said" {
			t.Fatalf("catch-up event %d: id %q %+v %v", want, id, env, err)
		}
	}
	live := mustAppend(t, a.s, "chat-1", 3, ev("chat.said", "live"))
	id, env, err := r.next()
	if err != nil || id != fmt.Sprint(live.Position) || string(env.Data) != `"live"` {
		t.Fatalf("live event: %q %+v %v", id, env, err)
	}
	r.resp.Body.Close()

	// Resume after the last event seen.
	r2 := openSSE(t, a.url+"/v1/events/subscribe?types=chat.said", fmt.Sprint(chat[2]))
	id, _, err = r2.next()
	if err != nil || id != fmt.Sprint(live.Position) {
		t.Fatalf("resume after %d: %q %v", chat[2], id, err)
	}
	// A heartbeat comment arrives while idle.
	line := ""
	for !strings.HasPrefix(line, ":") {
		if line, err = r2.br.ReadString('\n'); err != nil {
			t.Fatalf("waiting for a heartbeat: %v", err)
		}
	}
	// Graceful shutdown ends the stream.
	close(a.stopping)
	done := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, r2.br); done <- err }()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("stream ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("SSE stream did not end on shutdown")
	}
}

func TestHTTPParkedEvents(t *testing.T) {
	a := startAPI(t, eventstore.APIConfig{})
	fail := true
	done := newRecorder()
	subscribe(t, a.s, "mailer", func(ctx context.Context, e eventstore.Envelope) error {
		if fail && e.Type == "mail.bad" {
			return errors.New("smtp says no")
		}
		return done.handle(ctx, e)
	}, eventstore.SubscribeOptions{MaxAttempts: 2, Backoff: 5 * time.Millisecond})
	mail := mustAppend(t, a.s, "mail-1", 0, ev("mail.bad", 1), ev("mail.good", 2))
	done.waitLen(t, 1)
	var list []any
	waitFor(t, func() bool {
		_, m, _ := call(t, "GET", a.url+"/v1/subscriptions/mailer/parked", "", "")
		list, _ = m["events"].([]any)
		return len(list) == 1
	})
	p := list[0].(map[string]any)
	if p["position"] != float64(mail.FirstPosition) || p["lastError"] != "smtp says no" || p["state"] != "parked" || p["type"] != "mail.bad" {
		t.Fatalf("parked: %v", p)
	}
	waitFor(t, func() bool { // checkpoints are written within ackIdle
		st, m, _ := call(t, "GET", a.url+"/v1/subscriptions", "", "")
		gs, _ := m["groups"].([]any)
		return st == 200 && len(gs) == 1 && gs[0].(map[string]any)["checkpoint"] == float64(mail.Position)
	})
	if st, _, _ := call(t, "POST", a.url+"/v1/subscriptions/mailer/parked/99/retry", "", ""); st != 404 {
		t.Fatalf("retry unknown: %d", st)
	}
	if st, _, _ := call(t, "DELETE", a.url+"/v1/subscriptions/mail.er/parked/1", "", ""); st != 400 {
		t.Fatalf("bad group: %d", st)
	}
	if st, _, _ := call(t, "DELETE", a.url+fmt.Sprintf("/v1/subscriptions/mailer/parked/%d", mail.FirstPosition), "", ""); st != 204 {
		t.Fatalf("skip: %d", st)
	}
	_, m, _ := call(t, "GET", a.url+"/v1/subscriptions/mailer/parked", "", "")
	if l, _ := m["events"].([]any); len(l) != 0 {
		t.Fatalf("after skip: %v", m)
	}
}

func FuzzDecodeAppend(f *testing.F) {
	for _, s := range []string{
		`{"expectedVersion":0,"events":[{"type":"user.created","data":{"name":"ann"}}]}`,
		`{"events":[{"type":"a","data":null,"metadata":{"k":"v"},"id":"x","correlationId":"c","causationId":"d","source":"s"}]}`,
		`{"expectedVersion":-1,"events":[{"type":"a"},{"type":"b"}]}`,
		`{"events":[]}`, `{"events":[{"type":"a","metadata":[]}]}`, `[]`, `{}`, ``, `{"events":[{"type":"a"}]}x`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, p := eventstore.DecodeAppend(body)
		if p != nil {
			if p.Status < 400 || p.Status > 499 {
				t.Fatalf("status %d", p.Status)
			}
			return
		}
		if len(req.Events) == 0 || len(req.Events) > eventstore.MaxBatch {
			t.Fatalf("accepted %d events", len(req.Events))
		}
		for _, e := range req.Events {
			if !eventstore.ValidType(e.Type) || !json.Valid(e.Data) {
				t.Fatalf("accepted event %+v", e)
			}
			if len(e.Metadata) > 0 && e.Metadata[0] != '{' {
				t.Fatalf("accepted metadata %s", e.Metadata)
			}
		}
	})
}

func TestHTTPSubscribeOnlyNewEvents(t *testing.T) {
	a := startAPI(t, eventstore.APIConfig{})
	mustAppend(t, a.s, "old-1", 0, ev("old.x", 1))
	r := openSSE(t, a.url+"/v1/events/subscribe?fromPosition=end", "")
	// The answer's headers are sent once the engine delivers to the
	// stream, so nothing appended from now on is missed.
	nw := mustAppend(t, a.s, "new-1", 0, ev("new.x", 2))
	id, env, err := r.next()
	if err != nil || id != fmt.Sprint(nw.Position) || env.Stream != "new-1" {
		t.Fatalf("only new: %q %+v %v", id, env, err)
	}
}
