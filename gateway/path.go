package gateway

import "strings"

// Request paths are where a proxy and its upstreams most often disagree:
// one decodes %2F, another takes \ for /, a servlet container drops ;params,
// some decode twice. The gateway therefore forwards only paths that mean
// the same thing under every such reading: normalizePath decodes what RFC
// 3986 says is equivalent (escaped unreserved characters), writes the
// remaining escapes in upper case, merges repeated slashes, and refuses a
// path that, decoded any number of times, with \ taken for / and ;params
// dropped, has a . or .. segment, an encoded control character, or (unless
// PathConfig allows it) an encoded slash or a backslash. So the forwarded
// path, however an upstream decodes it, stays under the instance's base
// path, and it routes here as it would after decoding there.
//
// This file is free of net/http: the same decisions serve any transport.

// maxDecodings bounds how often a path is decoded to look for what hides
// under nested encodings (%252e is %2e is .).
const maxDecodings = 4

// PathConfig says how the gateway treats request paths upstreams may read
// differently from it. The zero value is the strict default; every field
// loosens it and is for upstreams known to need it.
type PathConfig struct {
	// AllowEncodedSlash forwards %2F in a path segment (kept encoded)
	// instead of refusing it with 400. Only for upstreams that do not
	// decode it before routing (GitLab-style ids such as group%2Fproject):
	// one that decodes it sees another path than the gateway routed.
	AllowEncodedSlash bool `yaml:"allowEncodedSlash"`
	// AllowBackslash forwards \ and %5C (as %5C) instead of refusing them.
	// IIS and some frameworks read \ as /.
	AllowBackslash bool `yaml:"allowBackslash"`
	// KeepEmptySegments forwards // as sent instead of merging it into /.
	// Some upstreams merge them, so //admin would reach /admin past a
	// route for /admin.
	KeepEmptySegments bool `yaml:"keepEmptySegments"`
}

// normalizePath returns the form of the escaped request path p that the
// gateway routes and forwards, or why it refuses p ("" when it does not).
// A p that does not start with / ("*", a CONNECT authority) is returned as
// it is: no route matches it.
func normalizePath(p string, pc PathConfig) (string, string) {
	if p == "" || p[0] != '/' || plainPath(p) {
		return p, ""
	}
	out, why := canonicalPath(p, pc)
	if why != "" {
		return "", why
	}
	if why = hiddenDanger(out, pc); why != "" {
		return "", why
	}
	return out, ""
}

// plainPath reports a path with nothing to normalise or check: only
// characters allowed unescaped, no escapes, no empty segments, no segment
// starting with a dot. Nearly every request's path is plain.
func plainPath(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '/' {
			if i+1 < len(p) && (p[i+1] == '/' || p[i+1] == '.') {
				return false
			}
			continue
		}
		if !pathChar(c) {
			return false
		}
	}
	return true
}

// canonicalPath decodes escaped unreserved characters, upper-cases the
// other escapes, escapes what may not appear literally and merges repeated
// slashes; it refuses malformed escapes, encoded controls, and encoded
// slashes and backslashes unless pc allows them.
func canonicalPath(p string, pc PathConfig) (string, string) {
	b := make([]byte, 0, len(p)+8)
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '%':
			if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
				return "", "malformed percent-encoding"
			}
			d := unhex(p[i+1])<<4 | unhex(p[i+2])
			i += 2
			if unreserved(d) {
				b = append(b, d)
				continue
			}
			if why := escapeRefused(d, pc); why != "" {
				return "", why
			}
			b = appendEscape(b, d)
		case c == '\\':
			if !pc.AllowBackslash {
				return "", "backslash"
			}
			b = appendEscape(b, c)
		case c == '/':
			if !pc.KeepEmptySegments && len(b) > 0 && b[len(b)-1] == '/' {
				continue
			}
			b = append(b, c)
		case c < 0x20 || c == 0x7f:
			return "", "control character"
		case pathChar(c):
			b = append(b, c)
		default:
			b = appendEscape(b, c)
		}
	}
	return string(b), ""
}

// escapeRefused says why an escaped byte d may not be forwarded, if so.
func escapeRefused(d byte, pc PathConfig) string {
	switch {
	case d < 0x20 || d == 0x7f:
		return "encoded control character"
	case d == '/' && !pc.AllowEncodedSlash:
		return "encoded slash (%2F)"
	case d == '\\' && !pc.AllowBackslash:
		return "encoded backslash (%5C)"
	}
	return ""
}

// hiddenDanger decodes the canonical path c again and again, as an
// upstream might, and reports a dot segment or a refused escape at any
// depth.
func hiddenDanger(c string, pc PathConfig) string {
	s := c
	for depth := 0; ; depth++ {
		if hasDotSegment(s) {
			return "dot segment (. or ..) once decoded"
		}
		if strings.IndexByte(s, '%') < 0 {
			return ""
		}
		if depth == maxDecodings {
			return "percent-encoded more than 4 times over"
		}
		next, why := decodeOnce(s, pc)
		if why != "" {
			return why
		}
		if next == s {
			return ""
		}
		s = next
	}
}

// decodeOnce percent-decodes s once, leaving malformed escapes as they are
// (as lenient decoders do), and refuses escapes pc does not allow.
func decodeOnce(s string, pc PathConfig) (string, string) {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' || i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			b = append(b, c)
			continue
		}
		d := unhex(s[i+1])<<4 | unhex(s[i+2])
		if why := escapeRefused(d, pc); why != "" {
			return "", why
		}
		b = append(b, d)
		i += 2
	}
	return string(b), ""
}

// hasDotSegment reports a segment made only of dots ("." and "..", and
// "..." which some file systems read as ".."), with / and \ both taken as
// separators and a segment's ;parameters left out, as servlet containers
// do (/..;/ is /../ to Tomcat).
func hasDotSegment(p string) bool {
	start := 0
	for i := 0; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' && p[i] != '\\' {
			continue
		}
		seg := p[start:i]
		start = i + 1
		if j := strings.IndexByte(seg, ';'); j >= 0 {
			seg = seg[:j]
		}
		if seg != "" && strings.Trim(seg, ".") == "" {
			return true
		}
	}
	return false
}

// matchForm is the path as route prefixes are compared with it: every
// escape decoded except those of /, \ and %, so that a segment matches a
// prefix exactly when it would once an upstream decodes it, while the
// segments stay where they are.
func matchForm(p string) string {
	if strings.IndexByte(p, '%') < 0 {
		return p
	}
	b := make([]byte, 0, len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]) {
			if d := unhex(p[i+1])<<4 | unhex(p[i+2]); d != '/' && d != '\\' && d != '%' {
				b = append(b, d)
				i += 2
				continue
			}
		}
		b = append(b, c)
	}
	return string(b)
}

// unreserved are RFC 3986's unreserved characters: their escapes are
// equivalent to them.
func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// pathChar reports a character a path segment may hold unescaped (RFC 3986
// pchar without '%': unreserved, sub-delims, ':' and '@').
func pathChar(c byte) bool {
	if unreserved(c) {
		return true
	}
	switch c {
	case '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', ':', '@':
		return true
	}
	return false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

const upperHex = "0123456789ABCDEF"

func appendEscape(b []byte, c byte) []byte {
	return append(b, '%', upperHex[c>>4], upperHex[c&15])
}
