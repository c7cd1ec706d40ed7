package registry

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

type apiEnv struct {
	store *Store
	srv   *httptest.Server
}

func newAPIEnv(t *testing.T) *apiEnv {
	t.Helper()
	s := newStore(t)
	srv := httptest.NewServer(NewAPI(s, APIConfig{KeepAlive: 200 * time.Millisecond}).Handler())
	t.Cleanup(srv.Close)
	return &apiEnv{store: s, srv: srv}
}

// call sends a request with a JSON (or raw string) body and returns status and body.
func (e *apiEnv) call(t *testing.T, method, path, body string, ct ...string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		if len(ct) > 0 {
			req.Header.Set("Content-Type", ct[0])
		} else {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// lastSeq is the bucket stream's last sequence: any write moves it.
func (e *apiEnv) lastSeq(t *testing.T) uint64 {
	t.Helper()
	st, err := e.store.js.Stream(ctxT(t), "KV_"+"plexus_registry")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

func TestAPIRegisterLifecycle(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	body := `{"url":"http://127.0.0.1:9001","weight":5,"version":"1.2.3","zone":"eu-1","tags":["a","b"],
		"metadata":{"team":"core"},"ttl":"20s","check":{"path":"/ready","interval":"2s","timeout":"1s","rise":3,"fall":1}}`
	code, _, b := e.call(t, "PUT", "/v1/services/users/instances/u1", body)
	if code != 201 {
		t.Fatalf("register: %d %s", code, b)
	}
	var inst Instance
	if err := json.Unmarshal(b, &inst); err != nil {
		t.Fatal(err)
	}
	if inst.Weight != 5 || inst.Status != StatusHealthy || inst.Check.Rise != 3 || inst.Check.Path != "/ready" ||
		inst.TTL != 20*time.Second || !inst.ExpiresAt.Equal(inst.RegisteredAt.Add(20*time.Second)) || inst.Metadata["team"] != "core" {
		t.Fatalf("instance %+v", inst)
	}
	code, _, b = e.call(t, "PUT", "/v1/services/users/instances/u1", `{"url":"http://127.0.0.1:9002"}`)
	if code != 200 {
		t.Fatalf("replace: %d %s", code, b)
	}
	var repl Instance
	_ = json.Unmarshal(b, &repl)
	if !repl.RegisteredAt.Equal(inst.RegisteredAt) || repl.Weight != 1 || repl.Check.Interval != DefaultInterval {
		t.Fatalf("replaced %+v", repl)
	}
	e.call(t, "PUT", "/v1/services/users/instances/u2", `{"url":"https://u2.example:8443/base"}`)
	e.call(t, "PUT", "/v1/services/orders/instances/o1", `{"url":"http://127.0.0.1:9100"}`)

	code, _, b = e.call(t, "GET", "/v1/services", "")
	var sums []ServiceSummary
	if err := json.Unmarshal(b, &sums); code != 200 || err != nil || len(sums) != 2 ||
		sums[0].Name != "orders" || sums[1].Name != "users" || sums[1].Instances != 2 || sums[1].Healthy != 2 {
		t.Fatalf("list: %d %s", code, b)
	}
	code, _, b = e.call(t, "GET", "/v1/services/users", "")
	var info ServiceInfo
	if err := json.Unmarshal(b, &info); code != 200 || err != nil || len(info.Instances) != 2 || info.Instances[0].ID != "u1" {
		t.Fatalf("get: %d %s", code, b)
	}
	for _, field := range []string{`"registeredAt"`, `"lastHeartbeat"`, `"expiresAt"`, `"status":"healthy"`, `"url"`, `"weight"`} {
		if !strings.Contains(string(b), field) {
			t.Fatalf("service answer lacks %s: %s", field, b)
		}
	}

	time.Sleep(20 * time.Millisecond)
	code, _, b = e.call(t, "PUT", "/v1/services/users/instances/u1/heartbeat", "")
	var hb HeartbeatAnswer
	if err := json.Unmarshal(b, &hb); code != 200 || err != nil || !hb.ExpiresAt.After(repl.ExpiresAt) {
		t.Fatalf("heartbeat: %d %s (before %s)", code, b, repl.ExpiresAt)
	}
	code, _, b = e.call(t, "PUT", "/v1/services/users/instances/u1/status", `{"status":"draining"}`)
	if code != 200 || !strings.Contains(string(b), `"status":"draining"`) {
		t.Fatalf("drain: %d %s", code, b)
	}
	code, _, b = e.call(t, "GET", "/v1/services", "")
	_ = json.Unmarshal(b, &sums)
	if code != 200 || sums[1].Healthy != 1 || sums[1].Draining != 1 {
		t.Fatalf("after drain %s", b)
	}
	if code, _, b = e.call(t, "DELETE", "/v1/services/users/instances/u1", ""); code != 204 || len(b) != 0 {
		t.Fatalf("delete: %d %s", code, b)
	}
	if code, _, _ = e.call(t, "DELETE", "/v1/services/users/instances/u1", ""); code != 404 {
		t.Fatalf("second delete: %d", code)
	}
	if code, _, _ = e.call(t, "PUT", "/v1/services/users/instances/u1/heartbeat", ""); code != 404 {
		t.Fatalf("heartbeat after delete: %d", code)
	}
	e.call(t, "DELETE", "/v1/services/users/instances/u2", "")
	if code, _, _ = e.call(t, "GET", "/v1/services/users", ""); code != 404 {
		t.Fatalf("empty service: %d", code)
	}
	// Registering again after a deregistration is new again.
	if code, _, b = e.call(t, "PUT", "/v1/services/users/instances/u1", `{"url":"http://127.0.0.1:9001"}`); code != 201 {
		t.Fatalf("register after delete: %d %s", code, b)
	}
}

func TestAPILegacyRegisterService(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	code, _, b := e.call(t, "POST", "/admin/register-service",
		`{"serviceName":"user-service","instance":{"id":"user-1","url":"http://localhost:3001","weight":2}}`)
	if code != 200 || strings.TrimSpace(string(b)) != `{"message":"Service registered","success":true}` {
		t.Fatalf("legacy: %d %s", code, b)
	}
	inst, err := e.store.Get(ctxT(t), "user-service", "user-1")
	if err != nil || inst.Weight != 2 || inst.URL != "http://localhost:3001" {
		t.Fatalf("stored %+v %v", inst, err)
	}
	code, _, b = e.call(t, "POST", "/admin/register-service", `{"serviceName":"user-service","instance":{"id":"user-2"}}`)
	if code != 422 || !strings.Contains(string(b), `"error"`) {
		t.Fatalf("legacy without url: %d %s", code, b)
	}
}

func TestAPIBadInputChangesNothing(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	if code, _, b := e.call(t, "PUT", "/v1/services/svc/instances/a", `{"url":"http://127.0.0.1:1"}`); code != 201 {
		t.Fatalf("setup: %d %s", code, b)
	}
	long := strings.Repeat("x", 200)
	cases := []struct {
		name, method, path, body, ct string
		want                         int
	}{
		{"unknown field", "PUT", "/v1/services/svc/instances/a", `{"url":"http://h:1","bogus":1}`, "", 400},
		{"trailing data", "PUT", "/v1/services/svc/instances/a", `{"url":"http://h:1"} {}`, "", 400},
		{"syntax", "PUT", "/v1/services/svc/instances/a", `{"url":`, "", 400},
		{"empty body", "PUT", "/v1/services/svc/instances/b", ``, "", 400},
		{"wrong type", "PUT", "/v1/services/svc/instances/a", `{"url":5}`, "", 400},
		{"text body", "PUT", "/v1/services/svc/instances/a", `url=x`, "text/plain", 415},
		{"too large", "PUT", "/v1/services/svc/instances/a", `{"url":"http://h:1","version":"` + strings.Repeat("v", MaxBodyBytes) + `"}`, "", 413},
		{"bad service name", "PUT", "/v1/services/-svc/instances/a", `{"url":"http://h:1"}`, "", 400},
		{"service with two dots", "PUT", "/v1/services/a..b/instances/a", `{"url":"http://h:1"}`, "", 400},
		{"id with dot", "PUT", "/v1/services/svc/instances/a.b", `{"url":"http://h:1"}`, "", 400},
		{"id too long", "PUT", "/v1/services/svc/instances/" + long, `{"url":"http://h:1"}`, "", 400},
		{"missing url", "PUT", "/v1/services/svc/instances/a", `{"weight":2}`, "", 422},
		{"relative url", "PUT", "/v1/services/svc/instances/a", `{"url":"/x"}`, "", 422},
		{"ftp url", "PUT", "/v1/services/svc/instances/a", `{"url":"ftp://h/x"}`, "", 422},
		{"url with credentials", "PUT", "/v1/services/svc/instances/a", `{"url":"http://u:p@h:1"}`, "", 422},
		{"url with query", "PUT", "/v1/services/svc/instances/a", `{"url":"http://h:1/?a=b"}`, "", 422},
		{"weight zero", "PUT", "/v1/services/svc/instances/a", `{"url":"http://h:1","weight":0}`, "", 422},
		{"weight too big", "PUT", "/v1/services/svc/instances/a", `{"url":"http://h:1","weight":1001}`, "", 422},
		{"too many tags", "PUT", "/v1/services/svc/instances/a", `{"url":"http://h:1","tags":[` + strings.Repeat(`"t",`, MaxTags) + `"t"]}`, "", 422},
		{"tag too long", "PUT", "/v1/services/svc/instances/a", `{"url":"http://h:1","tags":["` + long + `"]}`, "", 422},
		{"bad metadata key", "PUT", "/v1/services/svc/instances/a", `{"url":"http://h:1","metadata":{"a b":"c"}}`, "", 422},
		{"version too long", "PUT", "/v1/services/svc/instances/a", `{"url":"http://h:1","version":"` + long + `"}`, "", 422},
		{"zone control char", "PUT", "/v1/services/svc/instances/a", `{"url":"http://h:1","zone":"a\u0007"}`, "", 422},
		{"ttl too short", "PUT", "/v1/services/svc/instances/a", `{"url":"http://h:1","ttl":"500ms"}`, "", 422},
		{"ttl as number", "PUT", "/v1/services/svc/instances/a", `{"url":"http://h:1","ttl":30}`, "", 400},
		{"interval too short", "PUT", "/v1/services/svc/instances/a", `{"url":"http://h:1","check":{"interval":"50ms"}}`, "", 422},
		{"timeout over interval", "PUT", "/v1/services/svc/instances/a", `{"url":"http://h:1","check":{"interval":"1s","timeout":"2s"}}`, "", 422},
		{"check path relative", "PUT", "/v1/services/svc/instances/a", `{"url":"http://h:1","check":{"path":"health"}}`, "", 422},
		{"rise too big", "PUT", "/v1/services/svc/instances/a", `{"url":"http://h:1","check":{"rise":101}}`, "", 422},
		{"status unhealthy", "PUT", "/v1/services/svc/instances/a/status", `{"status":"unhealthy"}`, "", 422},
		{"status unknown field", "PUT", "/v1/services/svc/instances/a/status", `{"status":"draining","x":1}`, "", 400},
		{"status of unknown", "PUT", "/v1/services/svc/instances/zz/status", `{"status":"draining"}`, "", 404},
		{"heartbeat unknown", "PUT", "/v1/services/svc/instances/zz/heartbeat", ``, "", 404},
		{"delete unknown", "DELETE", "/v1/services/svc/instances/zz", ``, "", 404},
		{"get unknown service", "GET", "/v1/services/nope", ``, "", 404},
		{"legacy bad name", "POST", "/admin/register-service", `{"serviceName":"","instance":{"id":"a","url":"http://h:1"}}`, "", 400},
		{"legacy unknown field", "POST", "/admin/register-service", `{"serviceName":"svc","instance":{"id":"a","url":"http://h:1","x":1}}`, "", 400},
		{"watch bad service", "GET", "/v1/watch?service=a..b", ``, "", 400},
	}
	before := e.lastSeq(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ct []string
			if tc.ct != "" {
				ct = []string{tc.ct}
			}
			code, h, b := e.call(t, tc.method, tc.path, tc.body, ct...)
			if code != tc.want {
				t.Fatalf("status %d, want %d: %s", code, tc.want, b)
			}
			var p map[string]any
			if h.Get("Content-Type") != "application/problem+json" || json.Unmarshal(b, &p) != nil ||
				p["status"] != float64(tc.want) || p["detail"] == "" || p["type"] == nil {
				t.Fatalf("not a problem answer: %s %s", h.Get("Content-Type"), b)
			}
		})
	}
	if after := e.lastSeq(t); after != before {
		t.Fatalf("bad requests wrote to the bucket: last sequence %d -> %d", before, after)
	}
	inst, err := e.store.Get(ctxT(t), "svc", "a")
	if err != nil || inst.URL != "http://127.0.0.1:1" || inst.Weight != 1 || inst.Status != StatusHealthy {
		t.Fatalf("instance changed: %+v %v", inst, err)
	}
}

// sseEvent is one parsed server-sent event.
type sseEvent struct{ name, data string }

func readSSE(t *testing.T, rd *bufio.Reader) sseEvent {
	t.Helper()
	var ev sseEvent
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("reading stream: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "" && ev.name != "":
			return ev
		case strings.HasPrefix(line, "event: "):
			ev.name = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			ev.data = line[len("data: "):]
		}
	}
}

func TestAPIWatchStream(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	e.call(t, "PUT", "/v1/services/svc/instances/a", `{"url":"http://127.0.0.1:1"}`)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/v1/watch", nil)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("watch: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	rd := bufio.NewReader(resp.Body)
	ev := readSSE(t, rd)
	var snap Snapshot
	if ev.name != "snapshot" || json.Unmarshal([]byte(ev.data), &snap) != nil || len(snap.Instances) != 1 || snap.Instances[0].ID != "a" {
		t.Fatalf("first event %+v", ev)
	}
	e.call(t, "PUT", "/v1/services/svc/instances/b", `{"url":"http://127.0.0.1:2"}`)
	ev = readSSE(t, rd)
	var got Event
	if ev.name != "put" || json.Unmarshal([]byte(ev.data), &got) != nil || got.ID != "b" || got.Instance.URL != "http://127.0.0.1:2" {
		t.Fatalf("put event %+v", ev)
	}
	e.call(t, "DELETE", "/v1/services/svc/instances/a", "")
	ev = readSSE(t, rd)
	got = Event{}
	if ev.name != "delete" || json.Unmarshal([]byte(ev.data), &got) != nil || got.ID != "a" || got.Service != "svc" || got.Instance != nil {
		t.Fatalf("delete event %+v", ev)
	}
	// Idle streams carry keep-alive comments.
	line, _ := rd.ReadString('\n')
	if line != ": keepalive\n" {
		t.Fatalf("keepalive line %q", line)
	}
}

func TestWatchFilteredByService(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := ctxT(t)
	for _, svc := range []string{"a", "a.b", "ab"} {
		if _, _, err := s.Register(ctx, svc, "x", reg("http://127.0.0.1:1")); err != nil {
			t.Fatal(err)
		}
	}
	w, initial, err := s.Watch(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if len(initial) != 1 || initial[0].Service != "a" {
		t.Fatalf("initial %+v", initial)
	}
	_, _, _ = s.Register(ctx, "a.b", "y", reg("http://127.0.0.1:1"))
	_, _, _ = s.Register(ctx, "a", "y", reg("http://127.0.0.1:1"))
	ev, err := w.Next(ctx)
	if err != nil || ev.Service != "a" || ev.ID != "y" {
		t.Fatalf("event %+v %v", ev, err)
	}
}
