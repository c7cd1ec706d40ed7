package gatewaytest

import (
	"strings"
	"testing"
)

// Escapes are request paths (after a service's or route's prefix) that
// climb out of an instance's base path, or into another route, under some
// decoding an upstream may apply. Every one must get 400 bad-path.
var Escapes = []string{
	"..%2Fadv-secret", "%2e%2e%2fadv-secret", "%2E%2E%2Fadv-secret", "..%5Cadv-secret",
	"a/..%2f..%2fadv-secret", "..%252Fadv-secret", "%252e%252e%252fadv-secret",
	`..\adv-secret`, "..;/adv-secret", "%2e%2e;x/adv-secret", ".%2e/adv-secret", "%2e/adv-secret",
	"a/%2e%2e/%2e%2e/adv-secret", "%2e%2e%5cadv-secret", "..%255cadv-secret",
	"a%2Fadv-secret", "adv-secret%00.txt", "..%2f", "..", "a/../../adv-secret",
	"%25252e%25252e%25252fadv-secret", "...%2Fadv-secret", "a%0A/adv-secret",
}

// Allowed are paths that must pass, and what the upstream behind
// base path /public must receive for each.
var Allowed = []struct{ Path, Upstream string }{
	{"adv-ok/a%20b", "/public/adv-ok/a%20b"},
	{"adv-ok/%7Euser/%41", "/public/adv-ok/~user/A"},
	{"adv-ok/.well-known/x", "/public/adv-ok/.well-known/x"},
	{"adv-ok//double", "/public/adv-ok/double"},
	{"adv-ok/100%25", "/public/adv-ok/100%25"},
	{"adv-ok/caf%c3%a9", "/public/adv-ok/caf%C3%A9"},
}

// pathCases check the path normaliser end to end.
func pathCases() []Case {
	return []Case{
		{"paths/escapes-are-400", func(t *testing.T, s *suite) {
			for _, prefix := range []string{"/api/adv-base/", "/adv-files/"} {
				for _, p := range Escapes {
					c := s.dial(t)
					c.send("GET " + prefix + p + " HTTP/1.1\r\nHost: adv\r\nConnection: close\r\n\r\n")
					a := c.mustRead(slack)
					if a.status != 400 || a.problemType() != "bad-path" {
						t.Errorf("GET %s%s: status %d %s, want 400 bad-path", prefix, p, a.status, a.body)
					}
				}
			}
			s.neverReached(t, "adv-secret")
			for _, r := range s.up.all() {
				if strings.HasPrefix(r.uri, "/public") && !StaysUnder(r.uri, "/public") {
					t.Errorf("the upstream got %q, which decodes to a path outside /public", r.uri)
				}
			}
		}},
		{"paths/allowed-are-normalised", func(t *testing.T, s *suite) {
			for _, prefix := range []string{"/api/adv-base/", "/adv-files/"} {
				for _, p := range Allowed {
					a := s.get(t, prefix+p.Path+"?q=%2F..%2F")
					if a.status != 200 {
						t.Errorf("GET %s%s: status %d %s", prefix, p.Path, a.status, a.body)
					}
				}
			}
			for _, p := range Allowed {
				got := s.up.matching(p.Upstream + "?")
				if len(got) != 2 || got[0].uri != p.Upstream+"?q=%2F..%2F" {
					t.Errorf("%s: upstream saw %v, want %s?q=%%2F..%%2F twice (query untouched)", p.Path, uris(got), p.Upstream)
				}
			}
		}},
		{"paths/escaped-prefix-routes-alike", func(t *testing.T, s *suite) {
			// The route for /adv-files matches however its letters are
			// escaped, as the upstream would read them.
			for _, p := range []string{"/adv-fil%65s/adv-route", "/%61dv-files/adv-route", "/adv-files//adv-route"} {
				if a := s.get(t, p); a.status != 200 {
					t.Errorf("GET %s: status %d, want the route's 200", p, a.status)
				}
			}
			if got := s.up.matching("/public/adv-route"); len(got) != 3 {
				t.Errorf("upstream saw %v, want /public/adv-route three times", uris(s.up.matching("adv-route")))
			}
		}},
	}
}

func uris(ss []seen) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.uri
	}
	return out
}
