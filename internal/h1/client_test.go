package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// server is a loopback net/http server that counts the connections it accepts.
type server struct {
	*httptest.Server
	conns atomic.Int32
	up    Upstream
}

func newServer(t *testing.T, h http.HandlerFunc) *server {
	t.Helper()
	s := &server{Server: httptest.NewUnstartedServer(h)}
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(func() {
		s.CloseClientConnections()
		s.Close()
	})
	u, _ := url.Parse(s.URL)
	var err error
	if s.up, err = UpstreamOf(u); err != nil {
		t.Fatal(err)
	}
	return s
}

func newClient(t *testing.T, cfg Config) *Client {
	c := New(cfg)
	t.Cleanup(c.Close)
	return c
}

// roundTrip sends req and returns the answer with its whole body.
func roundTrip(t *testing.T, c *Client, up Upstream, req *Request) (*Response, string) {
	t.Helper()
	var resp Response
	if err := c.Do(context.Background(), up, req, &resp); err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.Target, err)
	}
	b, err := io.ReadAll(resp.Body())
	if err != nil {
		t.Fatalf("body: %v", err)
	}
	_ = resp.Body().Close()
	return &resp, string(b)
}

func TestRoundTripsAndReuse(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Method", r.Method)
		w.Header().Set("X-Uri", r.RequestURI)
		w.Header().Set("X-Got-Cl", fmt.Sprint(r.ContentLength))
		w.Header().Set("X-Te", strings.Join(r.TransferEncoding, ","))
		w.Header().Set("X-Host", r.Host)
		w.Header()["x-lower"] = []string{"v"}
		if r.Method != "HEAD" {
			_, _ = w.Write(b)
		}
	})
	c := newClient(t, Config{})
	cases := []struct {
		name string
		req  Request
		body string
		cl   string
		te   string
	}{
		{"get", Request{Method: "GET", Target: "/a%20b?x=1"}, "", "0", ""},
		{"post-length", Request{Method: "POST", Target: "/p", Body: strings.NewReader("hello"), ContentLength: 5}, "hello", "5", ""},
		{"post-empty", Request{Method: "POST", Target: "/p"}, "", "0", ""},
		{"post-chunked", Request{Method: "POST", Target: "/c", Body: strings.NewReader("streamed"), ContentLength: -1}, "streamed", "-1", "chunked"},
		{"put-large", Request{Method: "PUT", Target: "/l", Body: strings.NewReader(strings.Repeat("z", 200<<10)), ContentLength: 200 << 10}, strings.Repeat("z", 200<<10), fmt.Sprint(200 << 10), ""},
	}
	for _, tc := range cases {
		tc.req.Host = "upstream.test"
		resp, got := roundTrip(t, c, s.up, &tc.req)
		if resp.Status != 200 || got != tc.body {
			t.Errorf("%s: status %d body %.20q", tc.name, resp.Status, got)
		}
		h := func(k string) string { v, _ := resp.Get(k); return v }
		if h("X-Method") != tc.req.Method || h("X-Uri") != tc.req.Target || h("X-Got-Cl") != tc.cl || h("X-Te") != tc.te || h("X-Host") != "upstream.test" {
			t.Errorf("%s: upstream saw %v", tc.name, resp.Header)
		}
		if h("X-Lower") != "v" {
			t.Errorf("%s: field names are not canonical: %v", tc.name, resp.Header)
		}
	}
	resp, _ := roundTrip(t, c, s.up, &Request{Method: "HEAD", Target: "/h", Host: "x"})
	if resp.Status != 200 || resp.ContentLength != 0 {
		t.Errorf("HEAD: %d %d", resp.Status, resp.ContentLength)
	}
	// The streamed PUT's connection may be closed (the answer can end
	// before its writer did); every other exchange reuses one connection.
	if n := s.conns.Load(); n > 2 {
		t.Errorf("%d connections for sequential requests, want them reused", n)
	}
}

func TestChunkedAnswerWithTrailers(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		_, _ = io.WriteString(w, "part1-")
		w.(http.Flusher).Flush()
		_, _ = io.WriteString(w, "part2")
		w.Header().Set("X-Sum", "42")
	})
	c := newClient(t, Config{})
	resp, got := roundTrip(t, c, s.up, &Request{Method: "GET", Target: "/", Host: "x"})
	if got != "part1-part2" || resp.ContentLength != -1 {
		t.Fatalf("body %q length %d", got, resp.ContentLength)
	}
	if len(resp.Trailer) != 1 || resp.Trailer[0] != (Field{"X-Sum", "42"}) {
		t.Fatalf("trailers %v", resp.Trailer)
	}
	roundTrip(t, c, s.up, &Request{Method: "GET", Target: "/", Host: "x"})
	if n := s.conns.Load(); n != 1 {
		t.Errorf("%d connections, want the chunked answer's connection reused", n)
	}
}

func TestRequestTrailersSent(t *testing.T) {
	got := make(chan string, 1)
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		got <- r.Trailer.Get("X-Check")
	})
	c := newClient(t, Config{})
	roundTrip(t, c, s.up, &Request{Method: "POST", Target: "/", Host: "x", Header: []Field{{"Trailer", "X-Check"}},
		Body: strings.NewReader("abc"), ContentLength: -1, Trailer: func() []Field { return []Field{{"X-Check", "ok"}} }})
	if v := <-got; v != "ok" {
		t.Fatalf("trailer %q", v)
	}
}

// An upstream that closed a pooled connection while it was idle costs
// nothing: the request goes again on a new one.
func TestStaleConnectionRetried(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	c := newClient(t, Config{})
	roundTrip(t, c, s.up, &Request{Method: "GET", Target: "/", Host: "x"})
	s.CloseClientConnections() // the pooled connection dies while idle
	for _, req := range []Request{
		{Method: "GET", Target: "/", Host: "x", Retryable: true},
		{Method: "PUT", Target: "/", Host: "x", Body: bytes.NewReader([]byte("again")), ContentLength: 5, Retryable: true},
	} {
		_, body := roundTrip(t, c, s.up, &req)
		if body != "ok" {
			t.Fatalf("%s after the upstream closed the idle connection: %q", req.Method, body)
		}
		s.CloseClientConnections()
	}
	roundTrip(t, c, s.up, &Request{Method: "GET", Target: "/", Host: "x", Retryable: true})
	s.CloseClientConnections()
	var resp Response
	err := c.Do(context.Background(), s.up, &Request{Method: "POST", Target: "/", Host: "x", Body: strings.NewReader("x"), ContentLength: 1}, &resp)
	if err == nil {
		_ = resp.Body().Close()
		t.Fatal("a POST not marked retryable was sent twice") // it must fail on the stale connection
	}
}

func TestContextCancelCutsTheExchange(t *testing.T) {
	release := make(chan struct{})
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		<-release
	})
	defer close(release)
	c := newClient(t, Config{})
	ctx, cancel := context.WithCancelCause(context.Background())
	var resp Response
	if err := c.Do(ctx, s.up, &Request{Method: "GET", Target: "/", Host: "x"}, &resp); err != nil {
		t.Fatal(err)
	}
	go func() { time.Sleep(50 * time.Millisecond); cancel(errors.New("gone")) }()
	if _, err := io.ReadAll(resp.Body()); err == nil {
		t.Fatal("reading the body went on after the context ended")
	}
	_ = resp.Body().Close()
	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if err := c.Do(ctx2, s.up, &Request{Method: "GET", Target: "/", Host: "x"}, &resp); err == nil {
		t.Fatal("a request with an ended context was sent")
	}
}

func TestDialErrorIsOpError(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	_ = ln.Close()
	up, _ := UpstreamOf(&url.URL{Scheme: "http", Host: addr})
	var resp Response
	err := newClient(t, Config{}).Do(context.Background(), up, &Request{Method: "GET", Target: "/", Host: addr}, &resp)
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "dial" {
		t.Fatalf("%v: want a dial *net.OpError", err)
	}
}

func TestInvalidRequestRefused(t *testing.T) {
	c := newClient(t, Config{})
	up, _ := UpstreamOf(&url.URL{Scheme: "http", Host: "127.0.0.1:1"})
	for _, req := range []Request{
		{Method: "GET", Target: "/a b", Host: "x"},
		{Method: "GE T", Target: "/", Host: "x"},
		{Method: "GET", Target: "/", Host: "x\r\nEvil: 1"},
		{Method: "GET", Target: "/", Host: "x", Header: []Field{{"X", "a\r\nEvil: 1"}}},
		{Method: "GET", Target: "/", Host: "x", Header: []Field{{"X Y", "a"}}},
	} {
		var resp Response
		if err := c.Do(context.Background(), up, &req, &resp); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("%+v: %v", req, err)
		}
	}
}

func TestUpgradeHijack(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nhi")
		_ = brw.Flush()
		line, _ := brw.ReadString('\n')
		_, _ = io.WriteString(conn, strings.ToUpper(line))
	})
	c := newClient(t, Config{})
	var resp Response
	if err := c.Do(context.Background(), s.up, &Request{Method: "GET", Target: "/", Host: "x",
		Header: []Field{{"Connection", "Upgrade"}, {"Upgrade", "echo"}}}, &resp); err != nil {
		t.Fatal(err)
	}
	conn, br, err := resp.Hijack()
	if err != nil || resp.Status != 101 {
		t.Fatalf("%d %v", resp.Status, err)
	}
	defer conn.Close()
	_, _ = io.WriteString(conn, "ping\n")
	all, _ := io.ReadAll(br)
	if string(all) != "hiPING\n" {
		t.Fatalf("tunnel carried %q", all)
	}
}

// rawUpstream answers every connection with the given bytes after
// reading a request head.
func rawUpstream(t *testing.T, answer string) Upstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			br := bufio.NewReader(c)
			for {
				l, err := br.ReadString('\n')
				if err != nil || l == "\r\n" {
					break
				}
			}
			_, _ = io.WriteString(c, answer)
			_ = c.Close()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); <-done })
	up, _ := UpstreamOf(&url.URL{Scheme: "http", Host: ln.Addr().String()})
	return up
}

func TestMalformedAnswersRefused(t *testing.T) {
	c := newClient(t, Config{MaxHeaderBytes: 4096})
	for name, answer := range map[string]string{
		"two-lengths":        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
		"signed-length":      "HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc",
		"gzip-te":            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc",
		"te-twice":           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"obs-fold":           "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n",
		"space-before-colon": "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n",
		"bad-status":         "HTTP/1.1 2x0 OK\r\n\r\n",
		"http2":              "HTTP/2 200\r\n\r\n",
		"cr-in-value":        "HTTP/1.1 200 OK\r\nX: a\rb\r\nContent-Length: 0\r\n\r\n",
		"huge-head":          "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", 5000) + "\r\n\r\n",
	} {
		var resp Response
		err := c.Do(context.Background(), rawUpstream(t, answer), &Request{Method: "GET", Target: "/", Host: "x"}, &resp)
		if err == nil {
			_ = resp.Body().Close()
			t.Errorf("%s: accepted", name)
		}
	}
	for name, answer := range map[string]string{
		"bad-chunk-size": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
		"chunk-overrun":  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n",
		"short-length":   "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
	} {
		var resp Response
		if err := c.Do(context.Background(), rawUpstream(t, answer), &Request{Method: "GET", Target: "/", Host: "x"}, &resp); err != nil {
			t.Errorf("%s: head refused: %v", name, err)
			continue
		}
		if _, err := io.ReadAll(resp.Body()); err == nil {
			t.Errorf("%s: body read without error", name)
		}
		_ = resp.Body().Close()
	}
}

// Chunked beside a length is read as chunked, the length dropped, and
// the connection not kept (RFC 9112 §6.1); a body until close is read to
// the connection's end.
func TestAmbiguousButSafeFraming(t *testing.T) {
	c := newClient(t, Config{})
	for name, tc := range map[string]struct {
		answer, body string
		close        bool
	}{
		"te-and-cl":   {"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "abc", true},
		"until-close": {"HTTP/1.1 200 OK\r\n\r\nall of it", "all of it", true},
		"http10":      {"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", "ok", true},
		"interim-1xx": {"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "ok", false},
	} {
		resp, body := roundTrip(t, c, rawUpstream(t, tc.answer), &Request{Method: "GET", Target: "/", Host: "x"})
		if body != tc.body || resp.close != tc.close {
			t.Errorf("%s: body %q close %v", name, body, resp.close)
		}
		if _, ok := resp.Get("Content-Length"); ok && name == "te-and-cl" {
			t.Errorf("%s: Content-Length kept beside chunked", name)
		}
	}
}

// An upstream that answers before the request body ends gets its answer
// relayed; the connection is not reused.
func TestEarlyAnswerToStreamedBody(t *testing.T) {
	up := rawUpstream(t, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n")
	c := newClient(t, Config{})
	pr, pw := io.Pipe()
	go func() { _, _ = pw.Write(make([]byte, 1000)) }()
	var resp Response
	if err := c.Do(context.Background(), up, &Request{Method: "POST", Target: "/", Host: "x", Body: pr, ContentLength: -1}, &resp); err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(resp.Body())
	_ = resp.Body().Close()
	if resp.Status != 413 {
		t.Fatalf("status %d", resp.Status)
	}
	_ = pw.CloseWithError(errors.New("client gone")) // ends the body writer
}

func TestIdleConnectionsClosedAfterIdleTimeout(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {})
	c := newClient(t, Config{IdleTimeout: 50 * time.Millisecond})
	roundTrip(t, c, s.up, &Request{Method: "GET", Target: "/", Host: "x"})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.RLock()
		h := c.hosts[s.up.key]
		c.mu.RUnlock()
		if h.idleCount() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("idle connection kept past its idle timeout")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.Sweep()
	if len(c.hosts) != 0 {
		t.Fatal("Sweep kept a pool without connections")
	}
}
