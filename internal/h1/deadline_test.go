package h1

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// serveBoth runs h on an h1 Server and on a net/http Server, so a test
// can hold h1 to what net/http does.
func serveBoth(t *testing.T, h http.HandlerFunc) map[string]*countingListener {
	t.Helper()
	_, h1ln := serve(t, h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 2 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = hs.Serve(cl) }()
	t.Cleanup(func() { _ = hs.Close(); <-done })
	return map[string]*countingListener{"h1": h1ln, "net/http": cl}
}

// expired is a deadline long past.
var expired = time.Unix(1, 0)

// A write deadline a handler sets (a long poll's ExtendWrite) bounds its
// own answer, not the answers of later requests on the connection: one
// left behind expired must not cut the next answer and close the
// keep-alive connection under the client's next request (which a net/http
// client reports as EOF on a POST). net/http clears it after every
// request.
func TestServerWriteDeadlineEndsWithItsRequest(t *testing.T) {
	for name, ln := range serveBoth(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/expire" {
			w.Header().Set("Content-Length", "2")
			_, _ = io.WriteString(w, "ok")
			rc := http.NewResponseController(w)
			_ = rc.Flush() // the answer is out; then its deadline passes
			_ = rc.SetWriteDeadline(expired)
			return
		}
		_, _ = io.WriteString(w, "next")
	}) {
		t.Run(name, func(t *testing.T) {
			c := httpClient(t)
			base := "http://" + ln.Addr().String()
			for i, path := range []string{"/expire", "/next", "/expire", "/next"} {
				resp, err := c.Post(base+path, "text/plain", strings.NewReader("body"))
				if err != nil {
					t.Fatalf("request %d (%s): %v", i, path, err)
				}
				b, err := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("request %d (%s): %d %q %v", i, path, resp.StatusCode, b, err)
				}
			}
			if n := ln.n.Load(); n != 1 {
				t.Fatalf("%d connections for 4 sequential requests; want 1 kept alive", n)
			}
		})
	}
}

// A read deadline a handler sets bounds its own request, not the next
// one: a pipelined request whose head is already read must still get its
// body read (net/http sets the read deadline anew for every request).
func TestServerReadDeadlineEndsWithItsRequest(t *testing.T) {
	for name, ln := range serveBoth(t, func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if r.URL.Path == "/expire" {
			_ = http.NewResponseController(w).SetReadDeadline(expired)
		}
		_, _ = w.Write(b)
	}) {
		t.Run(name, func(t *testing.T) {
			nc, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
			// The first request and the second one's head go in one write;
			// the second body only after the first answer.
			_, err = io.WriteString(nc, "POST /expire HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\none"+
				"POST /next HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n")
			if err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(nc)
			req, _ := http.NewRequest(http.MethodPost, "/", nil)
			readAnswer := func(want string) {
				t.Helper()
				resp, err := http.ReadResponse(br, req)
				if err != nil {
					t.Fatalf("reading the answer %q: %v", want, err)
				}
				b, err := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || string(b) != want {
					t.Fatalf("answer: %d %q %v; want 200 %q", resp.StatusCode, b, err, want)
				}
			}
			readAnswer("one")
			if _, err := io.WriteString(nc, "two"); err != nil {
				t.Fatal(err)
			}
			readAnswer("two")
		})
	}
}
