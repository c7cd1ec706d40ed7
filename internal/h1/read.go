package h1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// Response is the answer to a request. Its Header holds every field but
// Transfer-Encoding (and Content-Length when both came: the body is then
// chunked); the strings stay valid after the answer ends.
type Response struct {
	Status int
	Header []Field
	// ContentLength is the body's declared length, -1 when unknown
	// (chunked or until the connection closes), 0 when there is none.
	ContentLength int64
	// Trailer holds the trailer fields once the body was read to its end.
	Trailer []Field
	body    body
	close   bool // the connection cannot carry another exchange
	chunked bool
	noBody  bool
}

func (r *Response) reset() {
	r.Status, r.ContentLength = 0, 0
	r.Header, r.Trailer = r.Header[:0], r.Trailer[:0]
	r.close, r.chunked, r.noBody = false, false, false
	r.body = body{resp: r}
}

// Body is the answer's body. Read it to its end, then Close it, to give
// the connection back to the pool; closing it earlier closes the
// connection.
func (r *Response) Body() io.ReadCloser { return &r.body }

// Get returns the first value of the field named key (canonical form).
func (r *Response) Get(key string) (string, bool) {
	for _, f := range r.Header {
		if f.Key == key {
			return f.Value, true
		}
	}
	return "", false
}

// Hijack takes the connection of a 101 answer for a tunnel, with the
// reader holding what the upstream sent after the head. The connection
// leaves the pool; the caller closes it.
func (r *Response) Hijack() (io.ReadWriteCloser, *bufio.Reader, error) {
	b := &r.body
	if r.Status != 101 || b.pc == nil || b.done {
		return nil, nil, errNotUpgrade
	}
	pc := b.pc
	if !b.stop() {
		b.finish(false)
		return nil, nil, errNotUpgrade // the request ended meanwhile
	}
	b.pc, b.done = nil, true
	b.stop = noStop
	_ = pc.conn.SetDeadline(zeroTime)
	pc.idleTimer.Stop()
	pc.h.inflight.Add(-1)
	return pc.conn, pc.br, nil
}

var errNotUpgrade = errors.New("h1: not a protocol switch")

// readHead reads the answer's status line and header, skipping 1xx
// answers but 101. nothing reports that not a byte arrived.
func (pc *pconn) readHead(req *Request, resp *Response) (nothing bool, err error) {
	for interim := 0; ; interim++ {
		if err := pc.lr.readLines(pc.h.c.cfg.MaxHeaderBytes); err != nil {
			return len(pc.lr.head) == 0 && interim == 0, err
		}
		if err := pc.parseHead(req, resp); err != nil {
			return false, err
		}
		if resp.Status >= 200 || resp.Status == 101 {
			return false, nil
		}
		if interim == 10 {
			return false, ErrMalformedResponse
		}
	}
}

// parseHead parses pc.head into resp: status, fields, framing.
func (pc *pconn) parseHead(req *Request, resp *Response) error {
	resp.Header = resp.Header[:0]
	resp.close, resp.chunked, resp.noBody, resp.ContentLength = false, false, false, 0
	start := 0
	var status []byte
	type span struct{ k0, k1, v0, v1 int32 }
	var spans [32]span
	fs := spans[:0]
	lr := &pc.lr
	for i, end := range lr.lines {
		line := trimEOL(lr.head[start:end])
		if line == nil {
			return ErrMalformedResponse
		}
		s0 := int32(start)
		start = int(end)
		if i == 0 {
			status = line
			continue
		}
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !tokenBytes(line[:colon]) {
			return ErrMalformedResponse // also obs-fold and space before the colon
		}
		v0, v1 := colon+1, len(line)
		for v0 < v1 && (line[v0] == ' ' || line[v0] == '\t') {
			v0++
		}
		for v1 > v0 && (line[v1-1] == ' ' || line[v1-1] == '\t') {
			v1--
		}
		if !fieldValue(line[v0:v1]) {
			return ErrMalformedResponse
		}
		canonical(line[:colon])
		fs = append(fs, span{s0, s0 + int32(colon), s0 + int32(v0), s0 + int32(v1)})
	}
	st, ok := parseStatus(status)
	if !ok {
		return ErrMalformedResponse
	}
	resp.Status = st
	http10 := status[7] == '0'
	// One string for the whole head: the fields are its substrings, valid
	// as long as anyone holds them.
	head := string(lr.head)
	for _, f := range fs {
		resp.Header = append(resp.Header, Field{Key: head[f.k0:f.k1], Value: head[f.v0:f.v1]})
	}
	return resp.frame(req, http10)
}

// fieldValue reports a value without control characters but HTAB.
func fieldValue(v []byte) bool {
	for _, c := range v {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// trimEOL drops the line's CRLF (or LF); nil when a CR is left inside.
func trimEOL(l []byte) []byte {
	l = l[:len(l)-1]
	if len(l) > 0 && l[len(l)-1] == '\r' {
		l = l[:len(l)-1]
	}
	if bytes.IndexByte(l, '\r') >= 0 {
		return nil
	}
	return l
}

// parseStatus reads "HTTP/1.x NNN[ reason]".
func parseStatus(l []byte) (int, bool) {
	if len(l) < 12 || string(l[:7]) != "HTTP/1." || (l[7] != '0' && l[7] != '1') || l[8] != ' ' ||
		(len(l) > 12 && l[12] != ' ') {
		return 0, false
	}
	st := 0
	for _, c := range l[9:12] {
		if c < '0' || c > '9' {
			return 0, false
		}
		st = st*10 + int(c-'0')
	}
	return st, st >= 100
}

// frame reads the framing fields: Content-Length, Transfer-Encoding and
// Connection. An ambiguous framing (two different lengths, an encoding
// other than chunked) is an error; chunked beside a length is read as
// chunked, the length dropped, and the connection not reused.
func (r *Response) frame(req *Request, http10 bool) error {
	cl, te, keep := int64(-1), 0, !http10
	out := r.Header[:0]
	for _, f := range r.Header {
		switch f.Key {
		case "Content-Length":
			n, ok := parseLength(f.Value)
			if !ok || (cl >= 0 && n != cl) {
				return ErrMalformedResponse
			}
			cl = n
		case "Transfer-Encoding":
			if te++; te > 1 || http10 || !equalFold(f.Value, "chunked") { // HTTP/1.0 has no chunks: refuse rather than guess
				return ErrMalformedResponse
			}
			continue
		case "Connection":
			switch {
			case hasToken(f.Value, "close"):
				r.close = true
			case hasToken(f.Value, "keep-alive"):
				keep = true
			}
		}
		out = append(out, f)
	}
	r.Header = out
	if !keep {
		r.close = true
	}
	switch {
	case r.Status < 200 || r.Status == 204 || r.Status == 304 || req.Method == "HEAD":
		r.noBody = true
		r.ContentLength = max(cl, 0)
		if req.Method != "HEAD" && r.Status != 304 {
			r.ContentLength = 0
		}
	case te > 0:
		r.chunked, r.ContentLength = true, -1
		if cl >= 0 {
			r.close = true
			r.Header = dropField(r.Header, "Content-Length")
		}
	case cl >= 0:
		r.ContentLength = cl
	default:
		r.ContentLength, r.close = -1, true // until the connection closes
	}
	return nil
}

func dropField(fs []Field, key string) []Field {
	out := fs[:0]
	for _, f := range fs {
		if f.Key != key {
			out = append(out, f)
		}
	}
	return out
}

// parseLength reads a Content-Length: decimal digits only.
func parseLength(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func tokenBytes(b []byte) bool {
	for _, c := range b {
		if !tokenChar[c] {
			return false
		}
	}
	return len(b) > 0
}

// canonical puts a field name in canonical form in place (net/http's
// rule: first letter and letters after '-' upper case, the rest lower).
func canonical(b []byte) {
	upper := true
	for i, c := range b {
		switch {
		case upper && 'a' <= c && c <= 'z':
			b[i] = c - 'a' + 'A'
		case !upper && 'A' <= c && c <= 'Z':
			b[i] = c - 'A' + 'a'
		}
		upper = c == '-'
	}
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

// hasToken reports a comma-separated list holding token (any case).
func hasToken(v, token string) bool {
	for v != "" {
		var t string
		t, v, _ = cut(v, ',')
		if equalFold(trimOWS(t), token) {
			return true
		}
	}
	return false
}

func cut(s string, sep byte) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func trimOWS(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
