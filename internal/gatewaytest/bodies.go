package gatewaytest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// partialPost is the head of a POST declaring a 1000-byte body, plus the
// first ten bytes of it: the rest never comes.
func partialPost(target, extra string) string {
	return "POST " + target + " HTTP/1.1\r\nHost: adv\r\nContent-Length: 1000\r\n" + extra + "\r\n" + strings.Repeat("x", 10)
}

// answeredUnread checks an answer given without reading a body that never
// completes: at once (long before any body timeout could have produced
// it), without 100 Continue, with the connection closed.
func answeredUnread(t *testing.T, c *conn, status int, typ string) {
	t.Helper()
	a := c.mustRead(slack)
	expectStatus(t, a, status, typ)
	if a.continue100 {
		t.Fatal("100 Continue was sent before the request was known to be routable and allowed")
	}
	if !a.closes() || !c.closedWithin(slack) {
		t.Fatalf("close %v: an answer that leaves the body unread must close the connection", a.close)
	}
}

// bodyCases are partial, slow and oversized bodies.
func bodyCases() []Case {
	return []Case{
		{"bodies/unknown-service-is-404-at-once", func(t *testing.T, s *suite) {
			expectStatus(t, s.get(t, "/api/adv-nosuch/x"), 404, "unknown-service")
			for _, extra := range []string{"", "Expect: 100-continue\r\n"} {
				c := s.dial(t)
				c.send(partialPost("/api/adv-nosuch/adv-partial", extra))
				answeredUnread(t, c, 404, "unknown-service")
			}
		}},
		{"bodies/rate-limited-partial-body-at-once", func(t *testing.T, s *suite) {
			for i := 0; i < 2; i++ {
				expectStatus(t, s.get(t, "/api/adv-limited/adv-rl-body"), 200, "")
			}
			c := s.dial(t)
			c.send(partialPost("/api/adv-limited/adv-rl-body", "Expect: 100-continue\r\n"))
			answeredUnread(t, c, 429, "rate-limited")
		}},
		{"bodies/too-large-by-length-at-once", func(t *testing.T, s *suite) {
			c := s.dial(t)
			c.send("POST /api/adv-echo/adv-toolarge HTTP/1.1\r\nHost: adv\r\nContent-Length: 70000\r\nExpect: 100-continue\r\n\r\n")
			answeredUnread(t, c, 413, "body-too-large")
			s.neverReached(t, "adv-toolarge")
		}},
		{"bodies/too-large-chunked", func(t *testing.T, s *suite) {
			c := s.dial(t)
			chunk := fmt.Sprintf("%x\r\n%s\r\n", 10000, strings.Repeat("y", 10000))
			c.send("POST /api/adv-echo/adv-bigchunk HTTP/1.1\r\nHost: adv\r\nTransfer-Encoding: chunked\r\n\r\n" + strings.Repeat(chunk, 7) + "0\r\n\r\n")
			a := c.mustRead(slack)
			expectStatus(t, a, 413, "body-too-large")
			s.stillServes(t, "adv-echo")
		}},
		{"bodies/expect-continue-when-allowed", func(t *testing.T, s *suite) {
			c := s.dial(t)
			c.send("POST /api/adv-echo/adv-expect HTTP/1.1\r\nHost: adv\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
			got, final := c.waitContinue(slack)
			if !got {
				t.Fatalf("no 100 Continue for a routable, allowed request (answer %+v)", final)
			}
			c.send("hello")
			expectStatus(t, c.mustRead(slack), 200, "")
			if got := s.up.matching("adv-expect"); len(got) != 1 || got[0].body != "hello" {
				t.Fatalf("upstream saw %+v", got)
			}
		}},
		{"bodies/stalled-body-gets-408", func(t *testing.T, s *suite) {
			// The service's timeout is a minute: only the body idle
			// timeout can end this request.
			start := time.Now()
			c := s.dial(t)
			c.send(partialPost("/api/adv-long/adv-stalled", ""))
			a, err := c.read(s.tg.BodyIdleTimeout + slack)
			if err == nil {
				expectStatus(t, a, 408, "request-timeout")
			} else if !c.closedWithin(time.Second) {
				t.Fatalf("a body stalled for the idle timeout was neither answered 408 nor closed: %v", err)
			}
			if waited := time.Since(start); waited > s.tg.BodyIdleTimeout+slack {
				t.Fatalf("held %v", waited)
			}
			s.stillServes(t, "adv-long")
		}},
		{"bodies/slow-uploads-not-charged", slowUploads},
	}
}

// slowUploads trickles the bodies of more POSTs than the breaker's
// failure threshold past the service's timeout: each slow client gets 408
// (or its connection closed), and the service keeps serving everyone else
// — no breaker opened, no instance ejected.
func slowUploads(t *testing.T, s *suite) {
	const uploads = 5
	var wg sync.WaitGroup
	statuses := make([]int, uploads)
	for i := 0; i < uploads; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := s.dial(t)
			c.send("POST /api/adv-slow/adv-trickle HTTP/1.1\r\nHost: adv\r\nContent-Length: 1000\r\n\r\n")
			done := make(chan struct{})
			go func() { // one byte every 200ms: never idle, never done within the 3s timeout
				defer close(done)
				for j := 0; j < 100; j++ {
					if _, err := c.c.Write([]byte("x")); err != nil {
						return
					}
					time.Sleep(200 * time.Millisecond)
				}
			}()
			if a, err := c.read(slack); err == nil {
				statuses[i] = a.status
			} else {
				statuses[i] = -1 // closed
			}
			_ = c.c.Close()
			<-done
		}()
	}
	wg.Wait()
	for i, st := range statuses {
		if st != 408 && st != -1 {
			t.Errorf("slow upload %d: status %d, want 408 or a closed connection", i, st)
		}
	}
	s.stillServes(t, "adv-slow")
}
