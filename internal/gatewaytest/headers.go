package gatewaytest

import (
	"strings"
	"testing"
	"time"
)

// headerCases are head-level attacks: forwarding headers, hop-by-hop
// lists, h2c upgrades, oversized and slow heads, and rate-limit keys.
func headerCases() []Case {
	return []Case{
		{"headers/xff-spoofing", func(t *testing.T, s *suite) {
			c := s.dial(t)
			c.send("GET /api/adv-echo/adv-xff HTTP/1.1\r\nHost: adv\r\nX-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\n" +
				"Forwarded: for=6.6.6.6\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n")
			expectStatus(t, c.mustRead(slack), 200, "")
			got := s.up.matching("adv-xff")
			if len(got) != 1 {
				t.Fatalf("upstream saw %d requests", len(got))
			}
			h := got[0].header
			if xff := h.Values("X-Forwarded-For"); len(xff) != 1 || xff[0] != s.clientIP(t) {
				t.Errorf("X-Forwarded-For %q, want only the client's address", xff)
			}
			if h.Get("X-Real-Ip") != "" || h.Get("Forwarded") != "" || h.Get("X-Forwarded-Proto") != "http" {
				t.Errorf("spoofed forwarding headers passed: %v", h)
			}
		}},
		{"headers/hop-by-hop-abuse", func(t *testing.T, s *suite) {
			c := s.dial(t)
			c.send("POST /api/adv-echo/adv-hop HTTP/1.1\r\nHost: adv\r\nConnection: X-Forwarded-For, X-Request-Id, Content-Length, Keep-Alive, close\r\n" +
				"Keep-Alive: timeout=999\r\nX-Request-Id: adv-id\r\nContent-Length: 5\r\n\r\nhello")
			expectStatus(t, c.mustRead(slack), 200, "")
			got := s.up.matching("adv-hop")
			if len(got) != 1 || got[0].body != "hello" {
				t.Fatalf("upstream saw %+v, want the whole body", got)
			}
			h := got[0].header
			if h.Get("X-Forwarded-For") != s.clientIP(t) || h.Get("X-Request-Id") == "" || h.Get("Keep-Alive") != "" {
				t.Errorf("upstream headers %v: the gateway's own headers must survive a Connection list", h)
			}
		}},
		{"headers/h2c-upgrade-not-tunnelled", func(t *testing.T, s *suite) {
			c := s.dial(t)
			c.send("GET /api/adv-echo/adv-h2c HTTP/1.1\r\nHost: adv\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n" +
				"Connection: Upgrade, HTTP2-Settings\r\n\r\n")
			a := c.mustRead(slack)
			if a.status == 101 {
				t.Fatal("the gateway switched to h2c")
			}
			for _, r := range s.up.matching("adv-h2c") {
				if r.header.Get("Upgrade") != "" || r.header.Get("Http2-Settings") != "" {
					t.Fatalf("an h2c upgrade reached the upstream: %v", r.header)
				}
			}
		}},
		{"headers/oversized-head-431", func(t *testing.T, s *suite) {
			c := s.dial(t)
			c.send("GET /api/adv-echo/adv-bighead HTTP/1.1\r\nHost: adv\r\nX-Big: " + strings.Repeat("a", 70000) + "\r\n\r\n")
			a := c.mustRead(slack)
			expectStatus(t, a, 431, "")
			s.neverReached(t, "adv-bighead")
		}},
		{"headers/slow-head-closed", func(t *testing.T, s *suite) {
			start := time.Now()
			c := s.dial(t)
			c.send("GET /api/adv-echo/adv-slowhead HTTP/1.1\r\nHost: adv\r\n")
			if !c.closedWithin(s.tg.ReadHeaderTimeout + slack) {
				t.Fatalf("an unfinished head held the connection past %v", s.tg.ReadHeaderTimeout+slack)
			}
			if time.Since(start) < s.tg.ReadHeaderTimeout/2 {
				t.Fatalf("closed after %v, before the header timeout (%v)", time.Since(start), s.tg.ReadHeaderTimeout)
			}
			s.neverReached(t, "adv-slowhead")
		}},
		{"headers/ratelimit-key-is-normalised", func(t *testing.T, s *suite) {
			// Two tokens per ip+path: spellings of one path share them.
			for i, p := range []string{"/api/adv-limited/adv-login", "/api/adv-limited/ADV-LOGIN/", "/api/adv-limited//adv-Login"} {
				want := 200
				if i == 2 {
					want = 429
				}
				if a := s.get(t, p); a.status != want {
					t.Errorf("GET %s: status %d, want %d (one bucket for every spelling)", p, a.status, want)
				}
			}
		}},
	}
}
