package gatewaytest

import (
	"fmt"
	"strings"
	"testing"
)

// smuggled is a request hidden after a body, as a front proxy that frames
// by the other header would see it; its path is adv-smuggled-<tag>.
func smuggled(tag string) string {
	return "GET /api/adv-echo/adv-smuggled-" + tag + " HTTP/1.1\r\nHost: adv\r\n\r\n"
}

// framingCases are request-smuggling and framing tricks: whatever the
// gateway makes of them, a hidden request never reaches an upstream, and
// a request with both Content-Length and Transfer-Encoding is answered
// and its connection closed (RFC 9112 §6.1).
func framingCases() []Case {
	cs := []Case{
		{"framing/cl-te-closes", func(t *testing.T, s *suite) {
			// CL.TE: a Content-Length front end forwards all of it; the
			// gateway reads the chunked body, answers and must then close.
			body := "0\r\n\r\n" + smuggled("clte")
			c := s.dial(t)
			c.send("POST /api/adv-echo/adv-clte HTTP/1.1\r\nHost: adv\r\nContent-Length: " + fmt.Sprint(len(body)) +
				"\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
			a := c.mustRead(slack)
			if !a.closes() || !c.closedWithin(slack) {
				t.Fatalf("status %d, close %v: the connection must close after a request with CL and TE", a.status, a.close)
			}
			s.neverReached(t, "adv-smuggled-clte")
		}},
		{"framing/te-cl-closes", func(t *testing.T, s *suite) {
			c := s.dial(t)
			c.send("POST /api/adv-echo/adv-tecl HTTP/1.1\r\nHost: adv\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n" +
				"5\r\nhello\r\n0\r\n\r\n" + smuggled("tecl"))
			a := c.mustRead(slack)
			expectStatus(t, a, 200, "")
			if got := s.up.matching("adv-tecl"); len(got) != 1 || got[0].body != "hello" {
				t.Fatalf("upstream saw %+v, want one request with the chunked body", got)
			}
			if !a.closes() || !c.closedWithin(slack) {
				t.Fatal("the connection must close after a request with TE and CL")
			}
			s.neverReached(t, "adv-smuggled-tecl")
		}},
	}
	// Transfer-Encoding variants that some servers read as chunked and
	// others do not: each is refused or read safely, nothing is smuggled.
	for _, v := range []struct{ name, te string }{
		{"te-chunked-identity", "Transfer-Encoding: chunked, identity\r\n"},
		{"te-identity", "Transfer-Encoding: identity\r\n"},
		{"te-xchunked", "Transfer-Encoding: xchunked\r\n"},
		{"te-twice", "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n"},
		{"te-space-before-colon", "Transfer-Encoding : chunked\r\n"},
		{"te-obs-fold", "Transfer-Encoding: x\r\n chunked\r\n"},
		{"te-tab", "Transfer-Encoding:\tchunked\r\n"},
	} {
		cs = append(cs, Case{"framing/" + v.name, func(t *testing.T, s *suite) {
			body := "0\r\n\r\n" + smuggled(v.name)
			c := s.dial(t)
			c.send("POST /api/adv-echo/adv-" + v.name + " HTTP/1.1\r\nHost: adv\r\n" + v.te +
				"Content-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n" + body)
			a := c.mustRead(slack)
			if a.status < 400 && !(a.closes() && c.closedWithin(slack)) {
				t.Fatalf("status %d without closing the connection", a.status)
			}
			s.neverReached(t, "adv-smuggled-"+v.name)
		}})
	}
	return append(cs, lengthCases()...)
}

// lengthCases are Content-Length tricks and loose line endings.
func lengthCases() []Case {
	return []Case{
		{"framing/duplicate-cl-differ", func(t *testing.T, s *suite) {
			c := s.dial(t)
			c.send("POST /api/adv-echo/adv-dupcl HTTP/1.1\r\nHost: adv\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabc" + smuggled("dupcl"))
			a := c.mustRead(slack)
			expectStatus(t, a, 400, "")
			s.neverReached(t, "adv-dupcl")
			s.neverReached(t, "adv-smuggled-dupcl")
		}},
		{"framing/duplicate-cl-same", func(t *testing.T, s *suite) {
			c := s.dial(t)
			c.send("POST /api/adv-echo/adv-dupsame HTTP/1.1\r\nHost: adv\r\nContent-Length: 3\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc")
			expectStatus(t, c.mustRead(slack), 200, "")
			if got := s.up.matching("adv-dupsame"); len(got) != 1 || got[0].body != "abc" {
				t.Fatalf("upstream saw %+v", got)
			}
		}},
		{"framing/cl-signed-or-listed", func(t *testing.T, s *suite) {
			for _, cl := range []string{"+3", "3, 3", "0x3", " 3 3", "-1"} {
				c := s.dial(t)
				c.send("POST /api/adv-echo/adv-badcl HTTP/1.1\r\nHost: adv\r\nContent-Length: " + cl + "\r\n\r\nabc")
				if a := c.mustRead(slack); a.status != 400 {
					t.Errorf("Content-Length %q: status %d, want 400", cl, a.status)
				}
			}
			s.neverReached(t, "adv-badcl")
		}},
		{"framing/obs-fold-value", func(t *testing.T, s *suite) {
			// A folded line never becomes a header of its own.
			c := s.dial(t)
			c.send("GET /api/adv-echo/adv-fold HTTP/1.1\r\nHost: adv\r\nX-Adv: a\r\n X-Injected: yes\r\nConnection: close\r\n\r\n")
			a := c.mustRead(slack)
			if a.status == 200 {
				got := s.up.matching("adv-fold")
				if len(got) != 1 || got[0].header.Get("X-Injected") != "" {
					t.Fatalf("folded line became a header: %+v", got)
				}
			} else if a.status != 400 {
				t.Fatalf("status %d, want 200 (folded into one value) or 400", a.status)
			}
		}},
		{"framing/bare-lf", func(t *testing.T, s *suite) {
			c := s.dial(t)
			c.send("GET /api/adv-echo/adv-barelf HTTP/1.1\nHost: adv\nConnection: close\n\n")
			a := c.mustRead(slack)
			if a.status != 200 && a.status != 400 {
				t.Fatalf("status %d, want 200 or 400", a.status)
			}
			if n := len(s.up.matching("adv-barelf")); a.status == 200 && n != 1 {
				t.Fatalf("upstream got %d requests, want 1", n)
			}
		}},
		{"framing/malformed-chunked-is-400", func(t *testing.T, s *suite) {
			for _, body := range []string{"zz\r\nabc\r\n0\r\n\r\n", "3\nabc\n0\n\n", "3\r\nabcdef\r\n0\r\n\r\n"} {
				c := s.dial(t)
				c.send("POST /api/adv-echo/adv-badchunk HTTP/1.1\r\nHost: adv\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
				a := c.mustRead(slack)
				expectStatus(t, a, 400, "bad-body")
				if !c.closedWithin(slack) {
					t.Fatal("connection kept after a malformed chunked body")
				}
			}
			s.stillServes(t, "adv-echo")
		}},
		{"framing/h2-preface-and-connect", func(t *testing.T, s *suite) {
			for _, raw := range []string{
				"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
				"CONNECT adv-connect.example:443 HTTP/1.1\r\nHost: adv-connect.example:443\r\n\r\n",
				"GET http://adv-abs.example/api/adv-echo/adv-absolute HTTP/1.1\r\nHost: adv\r\nConnection: close\r\n\r\n",
			} {
				c := s.dial(t)
				c.send(raw)
				a, err := c.read(slack)
				if err == nil && a.status < 300 && !strings.HasPrefix(raw, "GET http") {
					t.Errorf("%q: status %d", raw[:20], a.status)
				}
			}
			s.neverReached(t, "adv-connect")
			if got := s.up.matching("adv-absolute"); len(got) > 1 {
				t.Fatalf("absolute-form request reached the upstream %d times", len(got))
			}
		}},
	}
}

// stillServes checks that an ordinary request to service still succeeds:
// nothing before it was charged to the service.
func (s *suite) stillServes(t *testing.T, service string) {
	t.Helper()
	for i := 0; i < 3; i++ {
		if a := s.get(t, "/api/"+service+"/adv-after"); a.status != 200 {
			t.Fatalf("GET %d after the attack: status %d %s; the attack was charged to %s", i, a.status, a.body, service)
		}
	}
}
