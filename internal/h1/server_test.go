package h1

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	n atomic.Int32
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// serve runs h on an h1 Server on a loopback port until the test ends.
func serve(t *testing.T, h http.HandlerFunc) (*Server, *countingListener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	s := NewServer(ServerConfig{Handler: h, ReadHeaderTimeout: 2 * time.Second})
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(cl) }()
	t.Cleanup(func() { _ = s.Close(); <-done })
	return s, cl
}

func httpClient(t *testing.T) *http.Client {
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func TestServerRoundTrips(t *testing.T) {
	_, ln := serve(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Echo", fmt.Sprintf("%s %s %s %d %v %q %s", r.Method, r.RequestURI, r.Host, r.ContentLength,
			r.TransferEncoding, r.URL.RawQuery, r.Header.Get("X-In")))
		switch r.URL.Path {
		case "/big":
			_, _ = w.Write([]byte(strings.Repeat("b", 10000)))
		case "/flush":
			_, _ = io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "b")
		case "/none":
			w.WriteHeader(http.StatusNoContent)
		case "/trailer":
			w.Header().Set("Trailer", "X-T")
			_, _ = io.WriteString(w, "t")
			w.Header().Set("X-T", r.Trailer.Get("X-Ct"))
		default:
			_, _ = w.Write(b)
		}
	})
	c := httpClient(t)
	base := "http://" + ln.Addr().String()
	cases := []struct {
		method, path, body string
		chunked            bool
		wantBody           string
		wantEcho           string
	}{
		{"GET", "/a?x=1", "", false, "", `GET /a?x=1 HOST 0 [] "x=1" in`},
		{"POST", "/p", "hello", false, "hello", `POST /p HOST 5 [] "" in`},
		{"POST", "/c", "chunky", true, "chunky", `POST /c HOST -1 [chunked] "" in`},
		{"GET", "/big", "", false, strings.Repeat("b", 10000), ""},
		{"GET", "/flush", "", false, "ab", ""},
		{"GET", "/%7Euser?q", "", false, "", `GET /%7Euser?q HOST 0 [] "q" in`},
	}
	host := ln.Addr().String()
	for _, tc := range cases {
		var body io.Reader
		if tc.body != "" {
			body = strings.NewReader(tc.body)
			if tc.chunked {
				body = io.MultiReader(body)
			}
		}
		req, _ := http.NewRequest(tc.method, base+tc.path, body)
		req.Header.Set("X-In", "in")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := strings.ReplaceAll(tc.wantEcho, "HOST", host)
		if resp.StatusCode != 200 || string(got) != tc.wantBody || (want != "" && resp.Header.Get("X-Echo") != want) {
			t.Errorf("%s %s: %d %q echo %q, want %q", tc.method, tc.path, resp.StatusCode, got, resp.Header.Get("X-Echo"), want)
		}
		if tc.path == "/a?x=1" && resp.ContentLength != 0 {
			t.Errorf("an empty answer has length %d", resp.ContentLength)
		}
		if tc.path == "/flush" && resp.ContentLength != -1 {
			t.Errorf("a flushed answer has length %d, want chunked", resp.ContentLength)
		}
	}
	resp, err := c.Head(base + "/big")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("HEAD: %v %v", resp, err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest("POST", base+"/trailer", io.MultiReader(strings.NewReader("x")))
	req.Trailer = http.Header{"X-Ct": []string{"v"}}
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Trailer.Get("X-T") != "v" {
		t.Errorf("trailers: the handler saw %q", resp.Trailer.Get("X-T"))
	}
	if n := ln.n.Load(); n > 2 { // the chunked POSTs close their connection
		t.Errorf("%d connections: keep-alive not kept", n)
	}
}

// raw sends bytes on a new connection and returns everything the server
// answers until it closes (or 3s pass).
func raw(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, req)
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	b, _ := io.ReadAll(c)
	return string(b)
}

func TestServerRefusesMalformedRequests(t *testing.T) {
	_, ln := serve(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.ReadAll(r.Body) })
	addr := ln.Addr().String()
	for name, tc := range map[string]struct{ req, status string }{
		"two-lengths":        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "400"},
		"signed-length":      {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\na", "400"},
		"listed-length":      {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 1\r\n\r\na", "400"},
		"te-identity":        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n", "501"},
		"te-chunked-gzip":    {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "501"},
		"space-before-colon": {"GET / HTTP/1.1\r\nHost: x\r\nX-A : b\r\n\r\n", "400"},
		"obs-fold":           {"GET / HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n", "400"},
		"no-host":            {"GET / HTTP/1.1\r\n\r\n", "400"},
		"two-hosts":          {"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", "400"},
		"bad-host":           {"GET / HTTP/1.1\r\nHost: x y\r\n\r\n", "400"},
		"ctl-in-value":       {"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n", "400"},
		"bare-cr":            {"GET / HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n", "400"},
		"http2-preface":      {"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "505"},
		"bad-target":         {"GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n", "400"},
		"huge-head":          {"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + strings.Repeat("a", 70000) + "\r\n\r\n", "431"},
		"bad-chunk":          {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", ""},
		"expect-other":       {"POST / HTTP/1.1\r\nHost: x\r\nExpect: magic\r\nContent-Length: 1\r\n\r\na", "417"},
	} {
		got := raw(t, addr, tc.req)
		if tc.status == "" {
			if strings.HasPrefix(got, "HTTP/1.1 200") && !strings.Contains(got, "Connection: close") {
				t.Errorf("%s: %q kept the connection", name, got)
			}
			continue
		}
		if !strings.HasPrefix(got, "HTTP/1.1 "+tc.status) {
			t.Errorf("%s: got %.60q, want %s", name, got, tc.status)
		}
	}
}

// CL with TE is read as chunked, answered, and the connection closed:
// the request hidden in the length never runs.
func TestServerChunkedWithLengthCloses(t *testing.T) {
	var served atomic.Int32
	_, ln := serve(t, func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		_, _ = io.ReadAll(r.Body)
	})
	body := "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	got := raw(t, ln.Addr().String(), fmt.Sprintf("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n%s", len(body), body))
	if !strings.Contains(got, "Connection: close") || strings.Count(got, "HTTP/1.1 ") != 1 || served.Load() != 1 {
		t.Fatalf("answer %q, %d served", got, served.Load())
	}
}

// 100 Continue goes out when the handler first reads the body, never
// before; a handler that answers without reading sends none.
func TestServerContinueOnFirstRead(t *testing.T) {
	_, ln := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/refuse" {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		b, _ := io.ReadAll(r.Body)
		_, _ = w.Write(b)
	})
	addr := ln.Addr().String()
	if got := raw(t, addr, "POST /refuse HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"); strings.Contains(got, "100 Continue") || !strings.HasPrefix(got, "HTTP/1.1 403") {
		t.Fatalf("refused: %q", got)
	}
	c, _ := net.Dial("tcp", addr)
	defer c.Close()
	_, _ = io.WriteString(c, "POST /ok HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
	br := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, _ := br.ReadString('\n')
	if line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("first line %q", line)
	}
	_, _ = br.ReadString('\n')
	_, _ = io.WriteString(c, "hello")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "hello" {
		t.Fatalf("body %q", b)
	}
}

func TestServerPipelining(t *testing.T) {
	_, ln := serve(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, r.URL.Path) })
	got := raw(t, ln.Addr().String(), "GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if i, j := strings.Index(got, "/one"), strings.Index(got, "/two"); i < 0 || j < i {
		t.Fatalf("pipelined answers: %q", got)
	}
}

func TestServerHijack(t *testing.T) {
	_, ln := serve(t, func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		l, _ := brw.ReadString('\n')
		_, _ = io.WriteString(conn, strings.ToUpper(l))
	})
	got := raw(t, ln.Addr().String(), "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\nping\n")
	if !strings.HasSuffix(got, "\r\n\r\nPING\n") {
		t.Fatalf("%q", got)
	}
}

func TestServerShutdownWaitsForRequests(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	s, ln := serve(t, func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		_, _ = io.WriteString(w, "done")
	})
	idle, _ := net.Dial("tcp", ln.Addr().String()) // never sends: closed by Shutdown
	defer idle.Close()
	got := make(chan string, 1)
	go func() { got <- raw(t, ln.Addr().String(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n") }()
	<-started
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	time.Sleep(100 * time.Millisecond)
	close(release)
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if a := <-got; !strings.HasSuffix(a, "done") || !strings.Contains(a, "Connection: close") {
		t.Fatalf("in-flight answer %q", a)
	}
}

// A handler that asks to watch the client (WatchClient, a long poll) sees
// its context end when the client leaves before the answer; the next
// request on a kept connection is still read whole after a watched one.
func TestServerWatchClientEndsContext(t *testing.T) {
	ended := make(chan error, 1)
	_, ln := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/quick" {
			w.(interface{ WatchClient() }).WatchClient()
			_, _ = io.WriteString(w, "quick")
			return
		}
		w.(interface{ WatchClient() }).WatchClient()
		select {
		case <-r.Context().Done():
			ended <- r.Context().Err()
		case <-time.After(20 * time.Second):
			ended <- nil
		}
	})
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	_, _ = io.WriteString(c, "GET /quick HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(resp.Body); string(b) != "quick" {
		t.Fatalf("quick answer %q", b)
	}
	_, _ = io.WriteString(c, "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
	_ = c.Close()
	if err := <-ended; err == nil {
		t.Fatal("the handler's context did not end when the client left")
	}
}
