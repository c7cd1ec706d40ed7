// Package gatewaytest is an adversarial test suite for a Plexus gateway:
// what an anonymous client can send to the public listener — smuggling
// and framing tricks, path escapes, partial and slow bodies, slow headers,
// oversized heads and bodies, spoofed forwarding headers, hop-by-hop and
// h2c upgrade abuse — and what each must get. It speaks raw TCP to an
// address, so the same table runs against the gateway in-process, against
// the plexus binary, and against any other transport the gateway is put on.
package gatewaytest

import (
	"net"
	"net/url"
	"testing"
	"time"
)

// Config is the gateway section (YAML) a target must run with: a short
// timeout and breaker threshold so that the attacks that used to open
// breakers do so within seconds, a small body limit, a route with a
// stripped prefix onto a service whose instance has a base path, and a
// rate limit by ip+path.
const Config = `
timeout: 3s
maxBodyBytes: 65536
retries: {attempts: 1}
breaker: {failureThreshold: 3, minRequests: 1000, resetTimeout: 1m}
ejection: {consecutiveFailures: 3, baseTime: 1m}
routes:
  - {match: {pathPrefix: /adv-files}, service: adv-base, stripPrefix: true}
services:
  adv-long: {timeout: 1m}
  adv-limited:
    rateLimit: {requests: 2, per: 1h, key: ip+path}
`

// Target is a running gateway under test.
type Target struct {
	// BaseURL is the gateway listener, http://host:port (cleartext HTTP/1.1).
	BaseURL string
	// Register makes the given base URLs the (healthy) instances of
	// service. The suite then waits until the gateway routes to them.
	Register func(t testing.TB, service string, urls ...string)
	// BodyIdleTimeout is the listener's request-body idle timeout; the
	// suite needs it below 10s to see it fire.
	BodyIdleTimeout time.Duration
	// ReadHeaderTimeout is the listener's timeout for request heads.
	ReadHeaderTimeout time.Duration
}

// suite is one run: the target, its address and the recording upstream.
type suite struct {
	tg   Target
	addr string
	up   *upstream
}

// slack is added to every wait for something the gateway must do: the
// suite asserts behaviour, never speed, and runs on loaded machines.
const slack = 20 * time.Second

// Case is one attack and what it must get.
type Case struct {
	Name string
	Run  func(t *testing.T, s *suite)
}

// Cases is the suite's table.
func Cases() []Case {
	var cs []Case
	for _, group := range [][]Case{framingCases(), pathCases(), bodyCases(), headerCases()} {
		cs = append(cs, group...)
	}
	return cs
}

// Run registers the suite's services on tg and runs every case, in
// parallel.
func Run(t *testing.T, tg Target) {
	u, err := url.Parse(tg.BaseURL)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		t.Fatalf("BaseURL %q: want http://host:port", tg.BaseURL)
	}
	if tg.Register == nil || tg.BodyIdleTimeout <= 0 || tg.BodyIdleTimeout > 10*time.Second || tg.ReadHeaderTimeout <= 0 {
		t.Fatalf("Target needs Register, a BodyIdleTimeout up to 10s and a ReadHeaderTimeout (got %+v)", tg)
	}
	s := &suite{tg: tg, addr: u.Host, up: newUpstream(t)}
	s.register(t, "adv-echo", s.up.a.URL)
	s.register(t, "adv-base", s.up.a.URL+"/public")
	s.register(t, "adv-slow", s.up.a.URL, s.up.b.URL)
	s.register(t, "adv-long", s.up.a.URL)
	s.register(t, "adv-limited", s.up.a.URL)
	for _, c := range Cases() {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			c.Run(t, s)
		})
	}
}

// register registers a service and waits until the gateway routes to it.
func (s *suite) register(t *testing.T, service string, urls ...string) {
	t.Helper()
	s.tg.Register(t, service, urls...)
	deadline := time.Now().Add(slack)
	for {
		c := s.dial(t)
		c.send("GET /api/" + service + "/adv-ready HTTP/1.1\r\nHost: adv\r\nConnection: close\r\n\r\n")
		if a, err := c.read(slack); err == nil && a.status == 200 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway never routed to %s", service)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// get sends a plain GET on a new connection and returns its answer.
func (s *suite) get(t *testing.T, target string) *answer {
	t.Helper()
	c := s.dial(t)
	c.send("GET " + target + " HTTP/1.1\r\nHost: adv\r\nConnection: close\r\n\r\n")
	return c.mustRead(slack)
}

// expectStatus fails the test unless a has status want (and, when typ is
// given, that problem type).
func expectStatus(t *testing.T, a *answer, want int, typ string) {
	t.Helper()
	if a.status != want {
		t.Fatalf("status %d, want %d: %s", a.status, want, a.body)
	}
	if typ != "" && a.problemType() != typ {
		t.Fatalf("problem type %q, want %q: %s", a.problemType(), typ, a.body)
	}
}

// neverReached fails the test if the upstream got a request whose target
// contains marker.
func (s *suite) neverReached(t *testing.T, marker string) {
	t.Helper()
	if got := s.up.matching(marker); len(got) > 0 {
		t.Fatalf("the upstream got %s %s: it must never see %q", got[0].method, got[0].uri, marker)
	}
}

// clientIP is the address the gateway sees this suite connect from.
func (s *suite) clientIP(t *testing.T) string {
	c := s.dial(t)
	host, _, _ := net.SplitHostPort(c.c.LocalAddr().String())
	return host
}
