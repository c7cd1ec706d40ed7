package gateway

import (
	"math/rand/v2"
	"net/http"
	"net/netip"
	"strings"

	"github.com/plexushq/plexus/internal/h1"
)

// Header keys in canonical form, so the hot path can index maps directly.
const (
	hdrRequestID      = "X-Request-Id"
	hdrTraceparent    = "Traceparent"
	hdrTracestate     = "Tracestate"
	hdrXFF            = "X-Forwarded-For"
	hdrXFProto        = "X-Forwarded-Proto"
	hdrXFHost         = "X-Forwarded-Host"
	hdrXRealIP        = "X-Real-Ip"
	hdrForwarded      = "Forwarded"
	hdrConnection     = "Connection"
	hdrUpgrade        = "Upgrade"
	hdrTE             = "Te"
	hdrUserAgent      = "User-Agent"
	hdrContentType    = "Content-Type"
	hdrRetryAfter     = "Retry-After"
	hdrRateLimit      = "Ratelimit-Limit"
	hdrRateRemaining  = "Ratelimit-Remaining"
	hdrRateReset      = "Ratelimit-Reset"
	hdrVary           = "Vary"
	hdrOrigin         = "Origin"
	hdrAllowOrigin    = "Access-Control-Allow-Origin"
	hdrAllowCreds     = "Access-Control-Allow-Credentials"
	hdrExposeHeaders  = "Access-Control-Expose-Headers"
	hdrAllowMethods   = "Access-Control-Allow-Methods"
	hdrAllowHeaders   = "Access-Control-Allow-Headers"
	hdrMaxAge         = "Access-Control-Max-Age"
	hdrRequestMethod  = "Access-Control-Request-Method"
	hdrRequestHeaders = "Access-Control-Request-Headers"
)

// hopHeaders are meaningful for one connection only (RFC 9110 7.6.1) and
// never forwarded, in either direction.
var hopHeaders = map[string]bool{
	"Connection":          true,
	"Proxy-Connection":    true,
	"Keep-Alive":          true,
	"Proxy-Authenticate":  true,
	"Proxy-Authorization": true,
	"Te":                  true,
	"Trailer":             true,
	"Transfer-Encoding":   true,
	"Upgrade":             true,
	"Http2-Settings":      true, // only meaningful with Upgrade: h2c, which is never forwarded
}

var upgradeValue = []string{"Upgrade"}

// connectionTokens lists the header names the Connection header marks as
// hop-by-hop, canonicalised; nil when there are none (the common case).
func connectionTokens(h http.Header) []string {
	vs := h[hdrConnection]
	if len(vs) == 0 {
		return nil
	}
	var out []string
	for _, v := range vs {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				out = append(out, http.CanonicalHeaderKey(f))
			}
		}
	}
	return out
}

// connectionFields is connectionTokens for an upstream's answer.
func connectionFields(fs []h1.Field) []string {
	var out []string
	for _, f := range fs {
		if f.Key != hdrConnection {
			continue
		}
		for _, t := range strings.Split(f.Value, ",") {
			if t = strings.TrimSpace(t); t != "" {
				out = append(out, http.CanonicalHeaderKey(t))
			}
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// upgradeType returns the protocol a request or response asks to switch to
// ("websocket"), or "" when it is not an upgrade. An upgrade to h2c is
// never one: a tunnel of cleartext HTTP/2 to an upstream would carry
// requests past the gateway's routing, limits and logs (h2c smuggling).
func upgradeType(h http.Header) string {
	up := h[hdrUpgrade]
	if len(up) == 0 || !headerHasToken(h[hdrConnection], "upgrade") || headerHasToken(up, "h2c") {
		return ""
	}
	return up[0]
}

func headerHasToken(vs []string, token string) bool {
	for _, v := range vs {
		for _, f := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), token) {
				return true
			}
		}
	}
	return false
}

// trust holds the trusted proxy networks.
type trust struct{ nets []netip.Prefix }

func (t *trust) trusted(a netip.Addr) bool {
	if len(t.nets) == 0 || !a.IsValid() {
		return false
	}
	a = a.Unmap()
	for _, p := range t.nets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// peerAddr parses the IP of RemoteAddr ("ip:port").
func peerAddr(remote string) (netip.Addr, string) {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		if a, err := netip.ParseAddr(remote); err == nil {
			return a, remote
		}
		return netip.Addr{}, remote
	}
	a := ap.Addr().Unmap()
	host := remote[:strings.LastIndexByte(remote, ':')]
	if len(host) > 1 && host[0] == '[' {
		host = host[1 : len(host)-1]
	}
	if ap.Addr().Is4In6() {
		host = a.String()
	}
	return a, host
}

// clientIP is the address of the client for rate limits and hashing: the
// peer, or — when the peer is a trusted proxy — the right-most address in
// X-Forwarded-For that is not itself a trusted proxy.
func (t *trust) clientIP(peer netip.Addr, peerStr string, xff []string) string {
	if len(xff) == 0 || !t.trusted(peer) {
		return peerStr
	}
	for i := len(xff) - 1; i >= 0; i-- {
		parts := strings.Split(xff[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			s := strings.TrimSpace(parts[j])
			a, err := netip.ParseAddr(s)
			if err != nil {
				return peerStr // garbage: do not believe anything left of it
			}
			if !t.trusted(a) {
				return a.Unmap().String()
			}
		}
	}
	return peerStr
}

// validRequestID accepts printable ASCII ids up to 128 bytes, so a client
// cannot inject log lines or huge values.
func validRequestID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

const hexDigits = "0123456789abcdef"

func putHex(dst []byte, v uint64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = hexDigits[v&0xf]
		v >>= 4
	}
}

// newRequestID returns 32 random hex digits.
func newRequestID() string {
	var b [32]byte
	putHex(b[:16], rand.Uint64())
	putHex(b[16:], rand.Uint64())
	return string(b[:])
}

// newTraceparent starts a W3C trace: version 00, random trace and parent
// ids, sampled.
func newTraceparent() string {
	var b [55]byte
	copy(b[:], "00-")
	putHex(b[3:19], rand.Uint64()|1)
	putHex(b[19:35], rand.Uint64())
	b[35] = '-'
	putHex(b[36:52], rand.Uint64()|1)
	copy(b[52:], "-01")
	return string(b[:])
}

// validTraceparent checks the W3C traceparent format of version 00 (and
// accepts higher versions' first 55 bytes, as the spec asks).
func validTraceparent(s string) bool {
	if len(s) < 55 || (len(s) > 55 && (s[:2] == "00" || s[55] != '-')) {
		return false
	}
	if s[2] != '-' || s[35] != '-' || s[52] != '-' || s[:2] == "ff" {
		return false
	}
	zeroTrace, zeroParent := true, true
	for i := 0; i < 55; i++ {
		switch i {
		case 2, 35, 52:
			continue
		}
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
		if c != '0' {
			if i >= 3 && i < 35 {
				zeroTrace = false
			} else if i >= 36 && i < 52 {
				zeroParent = false
			}
		}
	}
	return !zeroTrace && !zeroParent
}
