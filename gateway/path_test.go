package gateway

import (
	"strings"
	"testing"

	"github.com/plexushq/plexus/internal/gatewaytest"
)

func TestNormalizePath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string // want "" means refused
		pc             PathConfig
	}{
		{"plain", "/api/svc/users/7", "/api/svc/users/7", PathConfig{}},
		{"sub-delims and colon kept", "/a/b:c@d;e=f,g", "/a/b:c@d;e=f,g", PathConfig{}},
		{"unreserved decoded", "/%61pi/%7Euser/%2D%5F%2E", "/api/~user/-_.", PathConfig{}},
		{"other escapes upper-cased", "/a%3fb/c%c3%a9", "/a%3Fb/c%C3%A9", PathConfig{}},
		{"space and quote escaped", "/a b/\"q\"", "/a%20b/%22q%22", PathConfig{}},
		{"slashes merged", "//a///b/", "/a/b/", PathConfig{}},
		{"slashes kept when asked", "//a///b", "//a///b", PathConfig{KeepEmptySegments: true}},
		{"dotted names pass", "/.well-known/a.b/..c/c..", "/.well-known/a.b/..c/c..", PathConfig{}},
		{"percent kept", "/100%25", "/100%25", PathConfig{}},
		{"dot", "/a/./b", "", PathConfig{}},
		{"dot dot", "/a/../b", "", PathConfig{}},
		{"trailing dot dot", "/a/..", "", PathConfig{}},
		{"three dots", "/a/.../b", "", PathConfig{}},
		{"encoded dots", "/a/%2e%2E/b", "", PathConfig{}},
		{"half-encoded dots", "/a/.%2e/b", "", PathConfig{}},
		{"dots with params", "/a/..;x=1/b", "", PathConfig{}},
		{"encoded slash", "/a%2Fb", "", PathConfig{}},
		{"encoded slash allowed", "/a%2fb", "/a%2Fb", PathConfig{AllowEncodedSlash: true}},
		{"dot-dot through allowed slash", "/a/..%2Fb", "", PathConfig{AllowEncodedSlash: true}},
		{"backslash", `/a\b`, "", PathConfig{}},
		{"backslash allowed", `/a\b`, "/a%5Cb", PathConfig{AllowBackslash: true}},
		{"dot-dot through allowed backslash", `/a/..\b`, "", PathConfig{AllowBackslash: true}},
		{"encoded backslash", "/a%5cb", "", PathConfig{}},
		{"double-encoded slash", "/a%252Fb", "", PathConfig{}},
		{"double-encoded slash allowed", "/a%252Fb", "/a%252Fb", PathConfig{AllowEncodedSlash: true}},
		{"double-encoded dots", "/a/%252e%252e/b", "", PathConfig{}},
		{"deeply encoded dots", "/%25252e%25252e/b", "", PathConfig{}},
		{"encoded NUL", "/a%00b", "", PathConfig{}},
		{"double-encoded NUL", "/a%2500b", "", PathConfig{}},
		{"encoded newline", "/a%0Ab", "", PathConfig{}},
		{"raw control", "/a\x01b", "", PathConfig{}},
		{"malformed escape", "/a%zzb", "", PathConfig{}},
		{"truncated escape", "/a%2", "", PathConfig{}},
		{"too deep", "/a%25" + strings.Repeat("25", 6) + "41", "", PathConfig{}},
		{"deep but harmless", "/a%2525", "/a%2525", PathConfig{}},
		{"asterisk form untouched", "*", "*", PathConfig{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, why := normalizePath(tc.in, tc.pc)
			if tc.want == "" {
				if why == "" {
					t.Fatalf("normalizePath(%q) = %q, want it refused", tc.in, got)
				}
				return
			}
			if why != "" || got != tc.want {
				t.Fatalf("normalizePath(%q) = %q (%s), want %q", tc.in, got, why, tc.want)
			}
		})
	}
}

// Every escape the adversarial suite tries is refused by the default
// policy, whatever prefix it follows.
func TestNormalizePathRefusesSuiteEscapes(t *testing.T) {
	t.Parallel()
	for _, e := range gatewaytest.Escapes {
		for _, pfx := range []string{"/", "/api/svc/", "/files/x/"} {
			if got, why := normalizePath(pfx+e, PathConfig{}); why == "" {
				t.Errorf("%s%s passed as %q", pfx, e, got)
			}
		}
	}
}

func TestMatchRouteOnDecodedSegments(t *testing.T) {
	t.Parallel()
	cfg := Config{Routes: []RouteConfig{
		{Match: RouteMatch{PathPrefix: "/files"}, Service: "files", StripPrefix: true},
		{Match: RouteMatch{PathPrefix: "/v1/things:batch"}, Service: "batch", StripPrefix: true},
		{Match: RouteMatch{PathPrefix: "/caf\u00e9"}, Service: "cafe"},
	}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	rs := compileRoutes(cfg.Routes, func(int, *RouteConfig) *limiter { return nil })
	for _, tc := range []struct{ path, service, rest string }{
		{"/files/a%20b", "files", "/a%20b"},
		{"/v1/things%3Abatch/x%3Fy", "batch", "/x%3Fy"},
		{"/v1/things:batch", "batch", "/"},
		{"/caf%C3%A9/menu", "cafe", "/caf%C3%A9/menu"},
		{"/files%3Fx/a", "", ""},
		{"/files%2Fa", "", ""}, // an allowed %2F stays inside its segment
	} {
		rt, rest := matchRoute(rs, "h", "GET", tc.path)
		got := ""
		if rt != nil {
			got = rt.service
		}
		if got != tc.service || rest != tc.rest {
			t.Errorf("matchRoute(%q) = %q %q, want %q %q", tc.path, got, rest, tc.service, tc.rest)
		}
	}
}

// FuzzNormalizePath checks the normaliser's promise: whatever it forwards
// stays under the instance's base path however an upstream decodes it,
// normalising is idempotent, and a forwarded path routes as its decoded
// form would.
func FuzzNormalizePath(f *testing.F) {
	for _, s := range append(append([]string{}, gatewaytest.Escapes...),
		"a%20b", "%7Euser", ".well-known/x", "a//b", "100%25", "caf%c3%a9", "a;b=c/d", `a\b`, "%252e") {
		f.Add(s, false, false, false)
	}
	f.Fuzz(func(t *testing.T, rest string, slash, backslash, keepEmpty bool) {
		pc := PathConfig{AllowEncodedSlash: slash, AllowBackslash: backslash, KeepEmptySegments: keepEmpty}
		p, why := normalizePath("/public/"+rest, pc)
		if why != "" {
			return
		}
		if !gatewaytest.StaysUnder(p, "/public") {
			t.Fatalf("%q forwarded as %q, which an upstream can read outside /public", rest, p)
		}
		if again, why := normalizePath(p, pc); why != "" || again != p {
			t.Fatalf("not idempotent: %q → %q → %q (%s)", rest, p, again, why)
		}
		if m := matchForm(p); strings.Count(m, "/") != strings.Count(p, "/") {
			t.Fatalf("match form %q of %q moved segments", m, p)
		}
	})
}
