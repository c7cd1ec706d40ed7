package gatewaytest

import (
	"path"
	"strconv"
	"strings"
)

// StaysUnder reports whether the escaped path p, read the way any upstream
// might read it — percent-decoded zero to five times over, with or
// without \ taken for /, with or without ;parameters dropped from
// segments, dot segments then resolved — stays at base or under it. It is
// the property the gateway's path normaliser must give every path it
// forwards.
func StaysUnder(p, base string) bool {
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	s := p
	for depth := 0; depth <= 5; depth++ {
		for _, v := range readings(s) {
			if !under(v, base) {
				return false
			}
		}
		next := lenientUnescape(s)
		if next == s {
			break
		}
		s = next
	}
	return true
}

// readings are the ways an upstream may split a decoded path.
func readings(s string) []string {
	bs := strings.ReplaceAll(s, `\`, "/")
	return []string{s, bs, dropParams(s), dropParams(bs)}
}

func under(p, base string) bool {
	c := path.Clean("/" + p)
	return c == base || strings.HasPrefix(c, strings.TrimSuffix(base, "/")+"/")
}

// dropParams removes ;parameters from every segment, as servlet
// containers do.
func dropParams(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if j := strings.IndexByte(s, ';'); j >= 0 {
			segs[i] = s[:j]
		}
	}
	return strings.Join(segs, "/")
}

// lenientUnescape decodes every well-formed %XX and leaves the rest. It
// is written apart from the gateway's decoder on purpose: an oracle must
// not share the code it checks.
func lenientUnescape(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil && !strings.ContainsAny(s[i+1:i+3], "+-") {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
