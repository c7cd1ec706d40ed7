package ratelimit

import (
	"errors"
	"fmt"
	"hash/maphash"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
)

// ErrBadKeySpec is returned (wrapped) by KeyFunc for a spec it does not know.
var ErrBadKeySpec = errors.New("bad rate-limit key")

// maxKeyValue bounds the header or API-key bytes kept in a key; longer
// values are replaced by a keyed hash so a client cannot make each key
// arbitrarily large.
const maxKeyValue = 128

// KeyFunc returns the function that derives a request's rate-limit key from
// spec:
//
//   - "ip": the client IP (as resolved by the gateway, trusted proxies
//     applied);
//   - "ip+path" (also the empty spec, the seed gateway's key; docs/gateway.md): client IP
//     and URL path, folded (KeyPath) so that spellings which reach the same
//     place share a bucket;
//   - "header:NAME": the value of request header NAME; a request without it
//     is keyed by its client IP;
//   - "apikey": the token of "Authorization: Bearer TOKEN", else the
//     X-API-Key header; a request with neither is keyed by its client IP.
//
// Header and API-key values are prefixed ("h:", "k:") so that they can never
// collide with, and so spend, another client's IP bucket; values and paths
// longer than 128 bytes are replaced by a keyed hash, so a client cannot
// make keys arbitrarily large. The spec keyword is case-insensitive.
func KeyFunc(spec string) (func(r *http.Request, clientIP string) string, error) {
	s := strings.TrimSpace(spec)
	switch low := strings.ToLower(s); {
	case low == "ip":
		return func(_ *http.Request, ip string) string { return ip }, nil
	case low == "ip+path" || low == "":
		seed := maphash.MakeSeed()
		return func(r *http.Request, ip string) string {
			p := KeyPath(r.URL.Path)
			if len(p) <= maxKeyValue {
				return ip + " " + p
			}
			return prefixed(ip+" ", p, seed)
		}, nil
	case low == "apikey":
		seed := maphash.MakeSeed()
		return func(r *http.Request, ip string) string {
			if v := bearer(r.Header.Get("Authorization")); v != "" {
				return prefixed("k:", v, seed)
			}
			if v := r.Header.Get("X-Api-Key"); v != "" {
				return prefixed("k:", v, seed)
			}
			return ip
		}, nil
	case strings.HasPrefix(low, "header:"):
		name := strings.TrimSpace(s[len("header:"):])
		if !validHeaderName(name) {
			return nil, fmt.Errorf("%w %q: header name %q is not a valid HTTP header name", ErrBadKeySpec, spec, name)
		}
		name = textproto.CanonicalMIMEHeaderKey(name)
		seed := maphash.MakeSeed()
		return func(r *http.Request, ip string) string {
			if v := r.Header.Get(name); v != "" {
				return prefixed("h:", v, seed)
			}
			return ip
		}, nil
	}
	return nil, fmt.Errorf("%w %q (want ip, ip+path, header:NAME or apikey)", ErrBadKeySpec, spec)
}

// KeyPath folds a decoded URL path into the form ip+path keys use: ASCII
// letters in lower case, repeated slashes merged, no trailing slash, so that
// /login, /LOGIN, /login/ and //login, which most upstreams serve alike,
// draw from one bucket instead of each getting a fresh one. A path already
// in that form is returned as it is, without allocating.
func KeyPath(p string) string {
	if keyPathFolded(p) {
		return p
	}
	b := make([]byte, 0, len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c == '/' && len(b) > 0 && b[len(b)-1] == '/' {
			continue
		}
		b = append(b, c)
	}
	if len(b) > 1 && b[len(b)-1] == '/' {
		b = b[:len(b)-1]
	}
	return string(b)
}

func keyPathFolded(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if 'A' <= c && c <= 'Z' || c == '/' && (i+1 < len(p) && p[i+1] == '/' || i == len(p)-1 && i > 0) {
			return false
		}
	}
	return true
}

// bearer returns the token of an "Authorization: Bearer TOKEN" value.
func bearer(v string) string {
	const p = "bearer "
	if len(v) > len(p) && strings.EqualFold(v[:len(p)], p) {
		return strings.TrimSpace(v[len(p):])
	}
	return ""
}

// prefixed returns p+v, or p+"#"+hash(v) when v is long.
func prefixed(p, v string, seed maphash.Seed) string {
	if len(v) <= maxKeyValue {
		return p + v
	}
	return p + "#" + strconv.FormatUint(maphash.String(seed, v), 16)
}

// validHeaderName reports whether name is a non-empty RFC 9110 token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
