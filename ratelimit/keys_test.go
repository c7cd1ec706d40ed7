package ratelimit

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestKeyFunc(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 500)
	cases := []struct {
		spec    string
		headers map[string]string
		want    string
	}{
		{"ip", nil, "192.0.2.1"},
		{"IP", nil, "192.0.2.1"},
		{"ip+path", nil, "192.0.2.1 /api/users/7"},
		{"", nil, "192.0.2.1 /api/users/7"},
		{"header:X-Tenant", map[string]string{"X-Tenant": "acme"}, "h:acme"},
		{"header:x-tenant", map[string]string{"X-Tenant": "acme"}, "h:acme"},
		{"header:X-Tenant", nil, "192.0.2.1"},
		{"header:X-Tenant", map[string]string{"X-Tenant": "192.0.2.9"}, "h:192.0.2.9"}, // cannot hit that IP's bucket
		{"apikey", map[string]string{"Authorization": "Bearer tok123"}, "k:tok123"},
		{"apikey", map[string]string{"Authorization": "bearer  tok123 "}, "k:tok123"},
		{"apikey", map[string]string{"X-API-Key": "k-9"}, "k:k-9"},
		{"apikey", map[string]string{"Authorization": "Basic Zm9vOmJhcg==", "X-API-Key": "k-9"}, "k:k-9"},
		{"apikey", map[string]string{"Authorization": "Basic Zm9vOmJhcg=="}, "192.0.2.1"},
		{"apikey", nil, "192.0.2.1"},
	}
	for _, c := range cases {
		f, err := KeyFunc(c.spec)
		if err != nil {
			t.Fatalf("KeyFunc(%q): %v", c.spec, err)
		}
		r := httptest.NewRequest("GET", "http://gw/api/users/7?x=1", nil)
		for k, v := range c.headers {
			r.Header.Set(k, v)
		}
		if got := f(r, "192.0.2.1"); got != c.want {
			t.Errorf("KeyFunc(%q) with %v = %q, want %q", c.spec, c.headers, got, c.want)
		}
	}
	f, _ := KeyFunc("header:X-Tenant")
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-Tenant", long)
	k1 := f(r, "ip")
	r.Header.Set("X-Tenant", long+"y")
	if k2 := f(r, "ip"); len(k1) > 40 || !strings.HasPrefix(k1, "h:#") || k1 == k2 {
		t.Errorf("long values: %q and %q", k1, k2)
	}
}

func TestKeyFuncLongPath(t *testing.T) {
	t.Parallel()
	f, _ := KeyFunc("ip+path")
	a := f(httptest.NewRequest("GET", "/"+strings.Repeat("a", 5000), nil), "192.0.2.1")
	b := f(httptest.NewRequest("GET", "/"+strings.Repeat("a", 4999)+"b", nil), "192.0.2.1")
	if len(a) > 40 || a == b || !strings.HasPrefix(a, "192.0.2.1 #") {
		t.Errorf("long paths: %q, %q", a, b)
	}
}

func TestKeyFuncBadSpecs(t *testing.T) {
	t.Parallel()
	for _, spec := range []string{"cookie", "header:", "header: ", "header:X Tenant", "header:a\nb", "ip+host", "apikey:x"} {
		if _, err := KeyFunc(spec); !errors.Is(err, ErrBadKeySpec) {
			t.Errorf("KeyFunc(%q) error = %v", spec, err)
		}
	}
}

func FuzzKeyFunc(f *testing.F) {
	for _, s := range []string{"ip", "ip+path", "header:X-Tenant", "apikey", "", "header:", "HEADER:x", "header:\x00"} {
		f.Add(s, "v")
	}
	f.Fuzz(func(t *testing.T, spec, value string) {
		fn, err := KeyFunc(spec)
		if err != nil {
			if !errors.Is(err, ErrBadKeySpec) {
				t.Fatalf("unwrapped error %v", err)
			}
			return
		}
		r := httptest.NewRequest("GET", "/p", nil)
		r.Header["Authorization"] = []string{"Bearer " + value}
		r.Header["X-Tenant"] = []string{value}
		if k := fn(r, "198.51.100.7"); k == "" || len(k) > 200 {
			t.Fatalf("key %q for spec %q", k, spec)
		}
	})
}

// Spellings of one path that upstreams commonly serve alike share an
// ip+path bucket; different paths do not.
func TestKeyPathFolds(t *testing.T) {
	f, _ := KeyFunc("ip+path")
	key := func(p string) string { return f(httptest.NewRequest("GET", "http://gw"+p, nil), "192.0.2.1") }
	want := key("/api/svc/login")
	for _, p := range []string{"/api/svc/LOGIN", "/api/svc/login/", "//api//svc/Login//", "/api/svc/l%6Fgin", "/API/svc/login"} {
		if got := key(p); got != want {
			t.Errorf("%s keyed %q, want %q", p, got, want)
		}
	}
	for _, p := range []string{"/api/svc/logout", "/api/svc/login/x", "/"} {
		if key(p) == want {
			t.Errorf("%s shares the bucket of /api/svc/login", p)
		}
	}
	if KeyPath("/") != "/" || KeyPath("") != "" {
		t.Errorf("root folded to %q, empty to %q", KeyPath("/"), KeyPath(""))
	}
	if n := testing.AllocsPerRun(100, func() { _ = KeyPath("/api/svc/login") }); n != 0 {
		t.Errorf("a folded path allocates %v times", n)
	}
}

func FuzzKeyPath(f *testing.F) {
	for _, s := range []string{"/a/B//c/", "/", "", "//", "/LOGIN/", "/a%2Fb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		k := KeyPath(p)
		if KeyPath(k) != k || len(k) > len(p) {
			t.Fatalf("%q folded to %q, then to %q", p, k, KeyPath(k))
		}
		if strings.Contains(k, "//") || strings.ContainsAny(k, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") || len(k) > 1 && strings.HasSuffix(k, "/") {
			t.Fatalf("%q folded to %q", p, k)
		}
	})
}
