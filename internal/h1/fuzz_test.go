package h1

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"testing"
)

// FuzzRequestHead feeds bytes to the server's request parser. Whatever
// it accepts, net/http's parser must accept too and read the same way —
// method, target, host, length, chunking, every field — so the two
// gateway transports can never disagree about a request's meaning (h1
// may refuse more).
func FuzzRequestHead(f *testing.F) {
	for _, seed := range []string{
		"GET /a?b=c HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nx-a: 2\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
		"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"GET http://h/a%20b HTTP/1.1\r\nHost: y\r\n\r\n",
		"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"GET / HTTP/1.1\nHost: x\n\n",
		"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := NewServer(ServerConfig{Handler: http.NotFoundHandler()})
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		c := newConn(s, a)
		c.br = bufio.NewReader(bytes.NewReader(data))
		c.lr.br = c.br
		if err := c.readRequest(); err != nil {
			return
		}
		got := &c.req
		want, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(data)))
		if err != nil {
			t.Fatalf("h1 accepted what net/http refuses (%v): %q", err, data)
		}
		if got.Method != want.Method || got.RequestURI != want.RequestURI || got.ProtoMinor != want.ProtoMinor {
			t.Fatalf("request line read differently: %s %s %s vs %s %s %s", got.Method, got.RequestURI, got.Proto,
				want.Method, want.RequestURI, want.Proto)
		}
		if want.Host != "" && got.Host != want.Host {
			t.Fatalf("host %q vs %q", got.Host, want.Host)
		}
		if got.ContentLength != want.ContentLength || len(got.TransferEncoding) != len(want.TransferEncoding) {
			t.Fatalf("framing %d %v vs %d %v", got.ContentLength, got.TransferEncoding, want.ContentLength, want.TransferEncoding)
		}
		for k, vs := range got.Header {
			if w := want.Header[k]; len(w) != len(vs) || (len(vs) > 0 && w[0] != vs[0]) {
				t.Fatalf("field %s: %q vs %q", k, vs, w)
			}
		}
	})
}

// FuzzResponseHead feeds bytes to the client as an upstream's answer.
// Whatever it accepts, net/http's parser must accept with the same
// status and framing, and a body both read whole must be the same bytes.
func FuzzResponseHead(f *testing.F) {
	for _, seed := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
		"HTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.0 200 OK\r\n\r\nuntil close",
		"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := New(Config{})
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		pc := newPconn(&host{c: c}, a)
		defer pc.idleTimer.Stop()
		pc.br = bufio.NewReader(bytes.NewReader(data))
		pc.lr.br = pc.br
		req := &Request{Method: "GET", Target: "/", Host: "x"}
		var resp Response
		resp.reset()
		if _, err := pc.readHead(req, &resp); err != nil {
			return
		}
		// net/http's Transport skips 1xx answers but 101, as h1 does.
		wbr := bufio.NewReader(bytes.NewReader(data))
		want, err := http.ReadResponse(wbr, &http.Request{Method: "GET"})
		for err == nil && want.StatusCode < 200 && want.StatusCode != 101 {
			want, err = http.ReadResponse(wbr, &http.Request{Method: "GET"})
		}
		if err != nil {
			t.Fatalf("h1 accepted what net/http refuses (%v): %q", err, data)
		}
		if resp.Status != want.StatusCode {
			t.Fatalf("status %d vs %d", resp.Status, want.StatusCode)
		}
		if want.ContentLength >= 0 && resp.ContentLength != want.ContentLength && !resp.noBody {
			t.Fatalf("length %d vs %d", resp.ContentLength, want.ContentLength)
		}
		if resp.Status == 101 {
			return
		}
		// Read our body without the pool: the connection is a fake.
		resp.body = body{resp: &resp, pc: pc, stop: noStop}
		pc.h.inflight.Add(1)
		switch {
		case resp.noBody:
			resp.body.done = true
		case resp.chunked:
		case resp.ContentLength >= 0:
			resp.body.left = resp.ContentLength
			resp.body.done = resp.ContentLength == 0
		default:
			resp.body.left = -1
		}
		ours, err1 := io.ReadAll(&resp.body)
		theirs, err2 := io.ReadAll(want.Body)
		if err1 == nil && err2 == nil && !bytes.Equal(ours, theirs) {
			t.Fatalf("body %q vs %q", ours, theirs)
		}
	})
}
