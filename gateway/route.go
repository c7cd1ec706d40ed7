package gateway

import (
	"sort"
	"strings"
	"time"

	"github.com/plexushq/plexus/balance"
)

// route is a compiled configured route.
type route struct {
	name     string // metrics and log label
	prefix   string // "" or without trailing slash ("/" becomes "")
	segs     int    // segments in prefix
	anyPath  bool   // pathPrefix "/" or none: every path matches
	host     string // lower case, "" = any
	wildcard bool   // host is "*.domain": host holds ".domain"
	methods  []string
	service  string
	strip    bool
	limiter  *limiter
	timeout  time.Duration
	picker   balance.Picker
}

// compileRoutes orders routes from the most to the least specific: routes
// with a host first, then longer path prefixes; ties keep file order.
func compileRoutes(rcs []RouteConfig, limiterOf func(i int, rc *RouteConfig) *limiter) []*route {
	rs := make([]*route, 0, len(rcs))
	for i := range rcs {
		rc := &rcs[i]
		rt := &route{limiter: limiterOf(i, rc),
			name: rc.Name, service: rc.Service, strip: rc.StripPrefix,
			timeout: rc.Timeout, methods: rc.Match.Methods,
		}
		p := strings.TrimRight(rc.Match.PathPrefix, "/")
		rt.prefix, rt.anyPath, rt.segs = p, p == "", strings.Count(p, "/")
		if rt.name == "" {
			rt.name = rc.Match.PathPrefix
			if rt.name == "" {
				rt.name = rc.Match.Host
			}
		}
		h := strings.ToLower(rc.Match.Host)
		if strings.HasPrefix(h, "*.") {
			rt.wildcard, h = true, h[1:]
		}
		rt.host = h
		if rc.Strategy != "" {
			rt.picker, _ = balance.New(balance.Strategy(rc.Strategy))
		}
		rs = append(rs, rt)
	}
	sort.SliceStable(rs, func(i, j int) bool {
		if (rs[i].host != "") != (rs[j].host != "") {
			return rs[i].host != ""
		}
		return len(rs[i].prefix) > len(rs[j].prefix)
	})
	return rs
}

// matchRoute finds the first route matching the request and returns it with
// the path the upstream gets (the prefix stripped when the route says so).
// path is the request's normalised escaped path (normalizePath); prefixes
// are compared with its matchForm, so an escaped character matches the
// same route as the character itself.
func matchRoute(rs []*route, host, method, path string) (*route, string) {
	if len(rs) == 0 || path == "" || path[0] != '/' { // "OPTIONS *" matches no route
		return nil, ""
	}
	host = hostOnly(host)
	mpath := matchForm(path)
	for _, rt := range rs {
		if rt.host != "" && !rt.matchHost(host) {
			continue
		}
		rest, ok := rt.matchPath(path, mpath)
		if !ok || !rt.matchMethod(method) {
			continue
		}
		return rt, rest
	}
	return nil, ""
}

func (rt *route) matchHost(host string) bool {
	if rt.wildcard {
		return len(host) > len(rt.host) && hasSuffixFold(host, rt.host)
	}
	return strings.EqualFold(host, rt.host)
}

// matchPath matches the prefix against mpath, the match form of path, and
// returns the path the upstream gets, cut from path: both have their
// slashes at the same segments.
func (rt *route) matchPath(path, mpath string) (string, bool) {
	if rt.anyPath {
		return path, true
	}
	if !strings.HasPrefix(mpath, rt.prefix) {
		return "", false
	}
	tail := mpath[len(rt.prefix):]
	if tail != "" && tail[0] != '/' {
		return "", false // /users must not match /usersx
	}
	if !rt.strip {
		return path, true
	}
	rest := tail
	if mpath != path {
		rest = path[segmentEnd(path, rt.segs):]
	}
	if rest == "" {
		rest = "/"
	}
	return rest, true
}

// segmentEnd returns the index where the first n segments of p end.
func segmentEnd(p string, n int) int {
	for i := 0; i < len(p); i++ {
		if p[i] == '/' {
			if n == 0 {
				return i
			}
			n--
		}
	}
	return len(p)
}

func (rt *route) matchMethod(m string) bool {
	if len(rt.methods) == 0 {
		return true
	}
	for _, x := range rt.methods {
		if x == m {
			return true
		}
	}
	return false
}

// hostOnly drops the port of a Host header value, IPv6 literals included.
func hostOnly(h string) string {
	if h == "" {
		return h
	}
	if h[0] == '[' {
		if i := strings.IndexByte(h, ']'); i > 0 {
			return h[1:i]
		}
		return h
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.IndexByte(h, ':') == i {
		return h[:i]
	}
	return h
}

func hasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix)
}

// splitAPIPath reads /api/{service}/{rest...}: the service name and the rest
// of the path with its leading slash ("/" when there is none).
func splitAPIPath(path string) (service, rest string, ok bool) {
	const pfx = "/api/"
	if !strings.HasPrefix(path, pfx) {
		return "", "", false
	}
	s := path[len(pfx):]
	i := strings.IndexByte(s, '/')
	if i < 0 {
		service, rest = s, "/"
	} else {
		service, rest = s[:i], s[i:]
	}
	if !validServiceName(service) {
		return "", "", false
	}
	return service, rest, true
}

// validServiceName is the name rule of docs/openapi.yaml (internal/names)
// without a regexp on the hot path.
func validServiceName(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return false
		}
	}
	return true
}
