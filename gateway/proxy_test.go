package gateway

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/plexushq/plexus/internal/httpx"
)

// echo answers with what it received: method, path, query, headers and
// the body's hash and length, and the body itself when it is small.
func echo(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	sum := sha256.Sum256(b)
	w.Header().Set("X-Echo-Method", r.Method)
	w.Header().Set("X-Echo-URI", r.RequestURI)
	w.Header().Set("X-Echo-Host", r.Host)
	w.Header().Set("X-Echo-Sum", string(hexOf(sum[:])))
	for k, v := range r.Header {
		w.Header()["X-In-"+k] = v
	}
	w.WriteHeader(http.StatusOK)
	if len(b) <= 1<<20 {
		_, _ = w.Write(b)
	}
}

func hexOf(b []byte) []byte {
	out := make([]byte, len(b)*2)
	for i, c := range b {
		out[2*i], out[2*i+1] = hexDigits[c>>4], hexDigits[c&0xf]
	}
	return out
}

func TestProxyFaithfulBytes(t *testing.T) { eachTransport(t, testProxyFaithfulBytes) }

func testProxyFaithfulBytes(t *testing.T) {
	be := backend(t, echo)
	h := startGateway(t, Config{}, Options{})
	h.disc.set("svc", be.URL)
	c := client(t)
	binary := make([]byte, 70000)
	_, _ = rand.Read(binary)
	big := make([]byte, 10<<20)
	_, _ = rand.Read(big)
	tests := []struct {
		name, method, path string
		body               []byte
		wantURI            string
	}{
		{"binary POST", "POST", "/api/svc/upload", binary, "/upload"},
		{"10 MB PUT", "PUT", "/api/svc/big", big[:10<<20-1024], "/big"},
		{"query kept", "GET", "/api/svc/search?q=a+b&x=%2F&x=2&empty=", nil, "/search?q=a+b&x=%2F&x=2&empty="},
		{"escaped path kept", "GET", "/api/svc/a%3Fb/c%20d", nil, "/a%3Fb/c%20d"},
		{"escaped unreserved decoded", "GET", "/api/svc/%7euser/%41", nil, "/~user/A"},
		{"GET with body", "GET", "/api/svc/q", []byte(`{"filter":1}`), "/q"},
		{"no rest", "GET", "/api/svc", nil, "/"},
		{"form body", "POST", "/api/svc/form", []byte("a=1&b=%20x"), "/form"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := mustReq(t, tc.method, h.url+tc.path, bytes.NewReader(tc.body))
			if tc.body == nil {
				req.Body = nil
			}
			resp, got := do(t, c, req)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, got)
			}
			if u := resp.Header.Get("X-Echo-URI"); u != tc.wantURI {
				t.Errorf("upstream URI %q, want %q", u, tc.wantURI)
			}
			sum := sha256.Sum256(tc.body)
			if s := resp.Header.Get("X-Echo-Sum"); s != string(hexOf(sum[:])) {
				t.Errorf("upstream got a different body (sum %s)", s)
			}
			if len(tc.body) <= 1<<20 && !bytes.Equal(got, tc.body) {
				t.Errorf("answer body differs: %d bytes, want %d", len(got), len(tc.body))
			}
		})
	}
}

func TestProxyLargeResponseStreamed(t *testing.T) { eachTransport(t, testProxyLargeResponseStreamed) }

func testProxyLargeResponseStreamed(t *testing.T) {
	big := make([]byte, 10<<20)
	_, _ = rand.Read(big)
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(big)
	})
	h := startGateway(t, Config{}, Options{})
	h.disc.set("svc", be.URL)
	resp, got := do(t, client(t), mustReq(t, "GET", h.url+"/api/svc/file", nil))
	if resp.StatusCode != 200 || !bytes.Equal(got, big) {
		t.Fatalf("status %d, %d bytes: not the upstream's 10 MB", resp.StatusCode, len(got))
	}
}

func TestProxyStatusAndHeadersPassThrough(t *testing.T) {
	eachTransport(t, testProxyStatusAndHeadersPassThrough)
}

func testProxyStatusAndHeadersPassThrough(t *testing.T) {
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Custom", "v1")
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		w.Header().Set("Connection", "X-Secret-Hop")
		w.Header().Set("X-Secret-Hop", "must not pass")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTeapot)
		_, _ = w.Write([]byte(`{"a": 1,  "b":[1,2]}`))
	})
	h := startGateway(t, Config{}, Options{})
	h.disc.set("svc", be.URL)
	resp, body := do(t, client(t), mustReq(t, "GET", h.url+"/api/svc/x", nil))
	if resp.StatusCode != http.StatusTeapot {
		t.Fatalf("status %d, want 418", resp.StatusCode)
	}
	if string(body) != `{"a": 1,  "b":[1,2]}` {
		t.Errorf("body re-encoded: %q", body)
	}
	if resp.Header.Get("X-Custom") != "v1" || len(resp.Header.Values("Set-Cookie")) != 2 {
		t.Errorf("headers lost: %v", resp.Header)
	}
	if resp.Header.Get("X-Secret-Hop") != "" || resp.Header.Get("Keep-Alive") != "" {
		t.Errorf("hop-by-hop answer headers passed: %v", resp.Header)
	}
	if resp.Header.Get("X-Request-ID") == "" {
		t.Error("no X-Request-ID on the answer")
	}
}

func TestProxyRequestHeaders(t *testing.T) { eachTransport(t, testProxyRequestHeaders) }

func testProxyRequestHeaders(t *testing.T) {
	be := backend(t, echo)
	tests := []struct {
		name    string
		trusted []string
		hdr     map[string]string
		want    map[string]string // "" = absent
	}{
		{"hop-by-hop stripped", nil,
			map[string]string{"Connection": "X-Private, keep-alive", "X-Private": "secret", "Keep-Alive": "1", "Proxy-Authorization": "x", "X-Keep": "yes"},
			map[string]string{"X-In-X-Private": "", "X-In-Keep-Alive": "", "X-In-Proxy-Authorization": "", "X-In-Connection": "", "X-In-X-Keep": "yes"}},
		{"spoofed X-Forwarded-For replaced", nil,
			map[string]string{"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil", "Forwarded": "for=6.6.6.6"},
			map[string]string{"X-In-X-Forwarded-For": "127.0.0.1", "X-In-X-Forwarded-Proto": "http", "X-In-Forwarded": ""}},
		{"trusted proxy appended", []string{"127.0.0.0/8"},
			map[string]string{"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example.com"},
			map[string]string{"X-In-X-Forwarded-For": "203.0.113.9, 127.0.0.1", "X-In-X-Forwarded-Proto": "https", "X-In-X-Forwarded-Host": "api.example.com"}},
		{"request id and traceparent kept", nil,
			map[string]string{"X-Request-ID": "abc-123", "Traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "Tracestate": "k=v"},
			map[string]string{"X-In-X-Request-Id": "abc-123", "X-In-Traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "X-In-Tracestate": "k=v", "X-Request-Id": "abc-123"}},
		{"invalid traceparent replaced", nil,
			map[string]string{"Traceparent": "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "Tracestate": "k=v"},
			map[string]string{"X-In-Tracestate": ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := startGateway(t, Config{TrustedProxies: tc.trusted}, Options{})
			h.disc.set("svc", be.URL)
			req := mustReq(t, "GET", h.url+"/api/svc/h", nil)
			req.Header["User-Agent"] = []string{""} // the Go client then sends none
			for k, v := range tc.hdr {
				req.Header.Set(k, v)
			}
			resp, _ := do(t, client(t), req)
			for k, v := range tc.want {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if host := resp.Header.Get("X-Echo-Host"); host != strings.TrimPrefix(be.URL, "http://") {
				t.Errorf("upstream Host %q, want the instance's %q", host, be.URL)
			}
			if tp := resp.Header.Get("X-In-Traceparent"); !validTraceparent(tp) {
				t.Errorf("upstream traceparent %q is not valid W3C", tp)
			}
			if id := resp.Header.Get("X-Request-Id"); id == "" || id != resp.Header.Get("X-In-X-Request-Id") {
				t.Errorf("request id %q not the one sent upstream %q", id, resp.Header.Get("X-In-X-Request-Id"))
			}
			if ua := resp.Header.Get("X-In-User-Agent"); ua != "" {
				t.Errorf("gateway added a User-Agent %q", ua)
			}
		})
	}
}

func TestProxyXForwardedHostIsClientHost(t *testing.T) {
	eachTransport(t, testProxyXForwardedHostIsClientHost)
}

func testProxyXForwardedHostIsClientHost(t *testing.T) {
	be := backend(t, echo)
	h := startGateway(t, Config{}, Options{})
	h.disc.set("svc", be.URL)
	req := mustReq(t, "GET", h.url+"/api/svc/", nil)
	req.Host = "shop.example.com"
	resp, _ := do(t, client(t), req)
	if got := resp.Header.Get("X-In-X-Forwarded-Host"); got != "shop.example.com" {
		t.Errorf("X-Forwarded-Host %q, want the client's Host", got)
	}
}

func TestProxyInstanceBasePath(t *testing.T) { eachTransport(t, testProxyInstanceBasePath) }

func testProxyInstanceBasePath(t *testing.T) {
	be := backend(t, echo)
	h := startGateway(t, Config{}, Options{})
	h.disc.set("svc", be.URL+"/v2/")
	resp, _ := do(t, client(t), mustReq(t, "GET", h.url+"/api/svc/users/1?x=1", nil))
	if got := resp.Header.Get("X-Echo-URI"); got != "/v2/users/1?x=1" {
		t.Errorf("upstream URI %q, want /v2/users/1?x=1", got)
	}
}

func problemOf(t *testing.T, b []byte) httpx.Problem {
	t.Helper()
	var p httpx.Problem
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("not a problem body: %s", b)
	}
	return p
}

func TestProxyClientErrors(t *testing.T) { eachTransport(t, testProxyClientErrors) }

func testProxyClientErrors(t *testing.T) {
	be := backend(t, echo)
	h := startGateway(t, Config{MaxBodyBytes: 1000}, Options{})
	h.disc.set("svc", be.URL)
	c := client(t)
	tests := []struct {
		name   string
		req    *http.Request
		status int
		typ    string
	}{
		{"413 by Content-Length", mustReq(t, "POST", h.url+"/api/svc/x", bytes.NewReader(make([]byte, 1001))), 413, "body-too-large"},
		{"413 while streaming", func() *http.Request {
			r := mustReq(t, "POST", h.url+"/api/svc/x", io.MultiReader(bytes.NewReader(make([]byte, 5000))))
			r.ContentLength = -1
			return r
		}(), 413, "body-too-large"},
		{"404 no route", mustReq(t, "GET", h.url+"/nothing", nil), 404, "no-route"},
		{"400 dot segments", func() *http.Request {
			r := mustReq(t, "GET", h.url+"/api/svc/x", nil)
			r.URL.Opaque = "/api/svc/../admin"
			return r
		}(), 400, "bad-path"},
		{"404 unknown service", mustReq(t, "GET", h.url+"/api/nope/x", nil), 404, "unknown-service"},
		{"400 encoded slash", mustReq(t, "GET", h.url+"/api/svc/a%2Fb", nil), 400, "bad-path"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := do(t, c, tc.req)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, b)
			}
			if p := problemOf(t, b); p.Type != httpx.ProblemTypeBase+tc.typ {
				t.Errorf("problem type %q, want %s", p.Type, tc.typ)
			}
			if resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("content type %q", resp.Header.Get("Content-Type"))
			}
		})
	}
}

func TestNoHealthyInstanceProblem(t *testing.T) { eachTransport(t, testNoHealthyInstanceProblem) }

func testNoHealthyInstanceProblem(t *testing.T) {
	h := startGateway(t, Config{}, Options{})
	h.disc.set("user-service", "http://127.0.0.1:1|unhealthy")
	resp, b := do(t, client(t), mustReq(t, "GET", h.url+"/api/user-service/x", nil))
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d Retry-After %q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if p := problemOf(t, b); p.Detail != "No healthy instances found for service: user-service" {
		t.Errorf("detail %q", p.Detail)
	}
}

func TestUnusableInstanceURLIsNoHealthyInstance(t *testing.T) {
	eachTransport(t, testUnusableInstanceURLIsNoHealthyInstance)
}

func testUnusableInstanceURLIsNoHealthyInstance(t *testing.T) {
	h := startGateway(t, Config{}, Options{})
	h.disc.set("svc", "ftp://127.0.0.1:21/")
	resp, b := do(t, client(t), mustReq(t, "GET", h.url+"/api/svc/x", nil))
	if resp.StatusCode != 503 || problemOf(t, b).Detail != "No healthy instances found for service: svc" {
		t.Fatalf("status %d body %s", resp.StatusCode, b)
	}
}
