package gateway

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/plexushq/plexus/internal/names"
)

func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{
		"",
		"strategy: p2c\ntimeout: 5s",
		"trustedProxies: [10.0.0.0/8, '::1']",
		"retries: {attempts: 2, budget: 0.2}",
		"rateLimit: {requests: 100, per: 1m, burst: 100, key: ip+path}",
		"cors: {allowOrigins: ['https://a.example'], allowCredentials: true, maxAge: 10m}",
		"services: {user-service: {strategy: hash, hashKey: 'cookie:sid', timeout: 5s}}",
		"routes: [{match: {pathPrefix: /users, host: '*.example.com', methods: [GET]}, service: users, stripPrefix: true}]",
		"breaker: {failureThreshold: 5, window: 10s, resetTimeout: 60s, halfOpenRequests: 3}",
		"ejection: {consecutiveFailures: 3, baseTime: 1s, maxTime: 1m, maxPercent: 50}",
		"accessLog: ''\nupstreamIdleTimeout: 4s",
		"routes: [{match: {pathPrefix: /%2e%2e}, service: x}]",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := ParseConfig(b)
		if err != nil {
			return
		}
		cfg.AccessLog = "" // never create files from fuzz input
		g, err := New(cfg, Options{Discovery: newDiscovery()})
		if err != nil {
			t.Fatalf("a validated configuration failed to compile: %v\n%s", err, b)
		}
		if c := cfg.CORS; c != nil && c.AllowCredentials {
			for _, o := range c.AllowOrigins {
				if o == "*" {
					t.Fatal("* with credentials passed validation")
				}
			}
		}
		_ = g
	})
}

func FuzzMatchRoute(f *testing.F) {
	f.Add("/users", "api.example.com", "GET", true, "/users/1", "api.example.com:80", "GET")
	f.Add("/users/", "", "", false, "/usersx", "h", "POST")
	f.Add("/", "*.example.com", "GET", true, "/a", "x.example.com", "GET")
	f.Add("/a/b", "", "PUT", true, "/a/b", "[::1]:3000", "PUT")
	f.Add("/api", "", "", true, "/api/svc/x%2Fy", "", "GET")
	f.Fuzz(func(t *testing.T, prefix, host, method string, strip bool, path, reqHost, reqMethod string) {
		rc := RouteConfig{Match: RouteMatch{PathPrefix: prefix, Host: host}, Service: "svc", StripPrefix: strip}
		if method != "" {
			rc.Match.Methods = []string{method}
		}
		cfg := Config{Routes: []RouteConfig{rc}}
		if cfg.Validate() != nil {
			return
		}
		rs := compileRoutes(cfg.Routes, func(int, *RouteConfig) *limiter { return nil })
		if np, why := normalizePath(path, PathConfig{}); why == "" {
			path = np // the gateway routes normalised paths only
		} else {
			return
		}
		rt, rest := matchRoute(rs, reqHost, reqMethod, path)
		if rt == nil {
			return
		}
		p := strings.TrimRight(prefix, "/")
		m := matchForm(path) // prefixes are compared with decoded segments
		if !strings.HasPrefix(m, p) {
			t.Fatalf("route %q matched path %q", prefix, path)
		}
		if tail := m[len(p):]; tail != "" && tail[0] != '/' {
			t.Fatalf("route %q matched %q inside a segment", prefix, path)
		}
		if method != "" && reqMethod != method {
			t.Fatalf("route for %s matched %s", method, reqMethod)
		}
		if strip {
			if rest == "" || rest[0] != '/' || !strings.HasSuffix(path, strings.TrimPrefix(rest, "/")) ||
				strings.Count(rest, "/") != max(1, strings.Count(path, "/")-strings.Count(p, "/")) {
				t.Fatalf("strip %q from %q gave %q", prefix, path, rest)
			}
		} else if rest != path {
			t.Fatalf("no strip: rest %q, want %q", rest, path)
		}
		if host != "" && !strings.HasPrefix(host, "*.") && !strings.EqualFold(hostOnly(reqHost), host) {
			t.Fatalf("host %q matched %q", host, reqHost)
		}
	})
}

func FuzzSplitAPIPath(f *testing.F) {
	for _, s := range []string{"/api/svc/x", "/api/svc", "/api//x", "/api/.x/y", "/api/a%2Fb/c", "/apix"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		svc, rest, ok := splitAPIPath(p)
		if !ok {
			return
		}
		if !names.Valid(svc) {
			t.Fatalf("service %q from %q breaks the name rule", svc, p)
		}
		if rest == "" || rest[0] != '/' {
			t.Fatalf("rest %q from %q", rest, p)
		}
	})
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", `q"uote\back`, "ctl\x00\x1f\n\t", "ünï©ødé", "bad\xff\xfeutf8", "\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := appendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%q encoded as invalid JSON %s: %v", s, b, err)
		}
		if utf8.ValidString(s) && got != s {
			t.Fatalf("%q round-tripped as %q", s, got)
		}
	})
}
