package h1

import (
	"io"
	"net/http"
	"net/url"
	"strings"
)

// requestError is a request the server refuses before any handler sees
// it: the status and a plain-text reason.
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(msg string) error { return &requestError{http.StatusBadRequest, msg} }

var (
	errTooLarge = &requestError{http.StatusRequestHeaderFieldsTooLarge, "request head too large"}
	errTE       = &requestError{http.StatusNotImplemented, "unsupported transfer encoding"}
	errVersion  = &requestError{http.StatusHTTPVersionNotSupported, "unsupported HTTP version"}
)

// urlParts is a connection's reused request URL.
type urlParts struct{ u url.URL }

var chunkedTE = []string{"chunked"}

// readRequest reads and parses a request head into c.req, and sets up
// its body. The rules are net/http's where they keep a request from
// being read two ways (RFC 9112): one Host; Content-Length decimal and,
// when repeated, the same; Transfer-Encoding exactly "chunked", which
// wins over a Content-Length (the connection then closes after the
// answer); no obs-fold, no space before a colon, no control characters.
func (c *conn) readRequest() error {
	lr := &c.lr
	if err := lr.readLines(c.s.cfg.MaxHeaderBytes); err != nil {
		if err == ErrHeaderTooLarge {
			return errTooLarge
		}
		return err
	}
	// Field names are put in canonical form in place, then everything
	// is cut from one string: one allocation for the whole head.
	start := 0
	for i, end := range lr.lines {
		line := trimEOL(lr.head[start:end])
		if line == nil {
			return badRequest("bare CR in the request head")
		}
		if i > 0 && len(line) > 0 {
			if _, _, ok := splitField(line); !ok {
				return badRequest("malformed header field")
			}
		}
		start = int(end)
	}
	head := string(lr.head)
	return c.parseHead(head)
}

// parseHead fills c.req from the head's text (lines as lr found them).
func (c *conn) parseHead(head string) error {
	r := &c.req
	resetRequest(r)
	h := r.Header
	clear(h)
	c.vals = c.vals[:0]
	var host, te, cl, conn, expect int
	var hostV, clV string
	start := 0
	for i, end := range c.lr.lines {
		line := head[start:end]
		start = int(end)
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if i == 0 {
			if err := c.parseRequestLine(line); err != nil {
				return err
			}
			continue
		}
		if line == "" {
			break
		}
		colon := strings.IndexByte(line, ':')
		k, v := line[:colon], strings.Trim(line[colon+1:], " \t")
		switch k {
		case "Host":
			host++
			hostV = v
			continue // r.Host, as net/http
		case "Content-Length":
			if cl > 0 && v != clV {
				return badRequest("conflicting Content-Length")
			}
			if _, ok := parseLength(v); !ok { // even beside chunked, which it loses to
				return badRequest("malformed Content-Length")
			}
			cl++
			clV = v
		case "Transfer-Encoding":
			te++
			if te > 1 || !equalFold(v, "chunked") {
				return errTE
			}
		case "Connection":
			conn++
			if hasToken(v, "close") {
				r.Close = true
			} else if hasToken(v, "keep-alive") && r.ProtoMinor == 0 {
				conn = -1 << 20 // an HTTP/1.0 keep-alive
			}
		case "Expect":
			expect++
			if !equalFold(v, "100-continue") {
				return &requestError{http.StatusExpectationFailed, "unsupported expectation"}
			}
		}
		c.vals = append(c.vals, v)
		n := len(c.vals)
		if old, ok := h[k]; ok {
			h[k] = append(old, v)
		} else {
			h[k] = c.vals[n-1 : n : n]
		}
	}
	if r.ProtoMinor == 0 && conn >= 0 {
		r.Close = true // HTTP/1.0 closes unless it asked to keep alive
	}
	switch {
	case host > 1:
		return badRequest("more than one Host")
	case host == 0 && r.ProtoMinor == 1:
		return badRequest("missing Host")
	case !validHost(hostV):
		return badRequest("malformed Host")
	}
	if r.Host == "" { // an absolute-form target names the host itself
		r.Host = hostV
	}
	if te > 0 && r.ProtoMinor == 0 { // net/http would ignore it and frame by length: refuse rather than guess
		return badRequest("Transfer-Encoding in an HTTP/1.0 request")
	}
	return c.frameBody(te > 0, cl > 0, clV, expect > 0)
}

// frameBody sets the request's body: chunked, by length, or none.
func (c *conn) frameBody(chunked, hasCL bool, clV string, expect bool) error {
	r := &c.req
	b := &c.body
	b.reset()
	switch {
	case chunked:
		r.TransferEncoding = chunkedTE
		r.ContentLength = -1
		r.Close = true // its Content-Length, if any, was dropped (RFC 9112 §6.1)
		delete(r.Header, "Content-Length")
		delete(r.Header, "Transfer-Encoding") // r.TransferEncoding, as net/http
		b.chunked = true
		if tr, ok := r.Header["Trailer"]; ok { // announced keys, as net/http
			r.Trailer = http.Header{}
			for _, v := range tr {
				for _, k := range strings.Split(v, ",") {
					if k = strings.TrimSpace(k); k != "" {
						r.Trailer[http.CanonicalHeaderKey(k)] = nil
					}
				}
			}
		}
	case hasCL:
		n, ok := parseLength(clV)
		if !ok {
			return badRequest("malformed Content-Length")
		}
		r.ContentLength, b.left = n, n
	}
	if r.ContentLength == 0 {
		r.Body = http.NoBody
		b.done = true
		return nil
	}
	b.expect = expect && r.ProtoMinor == 1
	r.Body = b
	return nil
}

// parseRequestLine reads "METHOD target HTTP/1.x".
func (c *conn) parseRequestLine(line string) error {
	r := &c.req
	m, rest, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || !isToken(m) || target == "" || !validTarget(target) {
		return badRequest("malformed request line")
	}
	switch proto {
	case "HTTP/1.1":
		r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.1", 1, 1
	case "HTTP/1.0":
		r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.0", 1, 0
	default:
		return errVersion
	}
	r.Method, r.RequestURI = m, target
	return c.parseTarget(target)
}

// parseTarget fills the reused URL: plain origin-form targets without
// escapes are cut without allocating; anything else goes through
// url.ParseRequestURI (and a CONNECT's authority is its host).
func (c *conn) parseTarget(target string) error {
	u := &c.url.u
	*u = url.URL{}
	r := &c.req
	if target[0] == '/' && strings.IndexByte(target, '%') < 0 {
		u.Path, u.RawQuery, u.ForceQuery = target, "", false
		if i := strings.IndexByte(target, '?'); i >= 0 {
			u.Path, u.RawQuery, u.ForceQuery = target[:i], target[i+1:], i == len(target)-1
		}
		return nil
	}
	if r.Method == http.MethodConnect && target[0] != '/' { // authority form, read as net/http reads it
		p, err := url.ParseRequestURI("http://" + target)
		if err != nil {
			return badRequest("malformed request target")
		}
		u.Host, r.Host = p.Host, p.Host
		return nil
	}
	p, err := url.ParseRequestURI(target)
	if err != nil {
		return badRequest("malformed request target")
	}
	*u = *p
	if u.Host != "" {
		r.Host = u.Host // absolute form
	}
	return nil
}

// resetRequest clears what the previous request on the connection set,
// keeping the context, header map and URL.
func resetRequest(r *http.Request) {
	r.Method, r.RequestURI, r.Host, r.Proto = "", "", "", ""
	r.ProtoMajor, r.ProtoMinor = 1, 1
	r.Body, r.GetBody, r.ContentLength, r.TransferEncoding = nil, nil, 0, nil
	r.Close, r.Trailer, r.Form, r.PostForm, r.MultipartForm = false, nil, nil, nil, nil
	r.TLS, r.Response, r.Pattern = nil, nil, ""
}

// validHost is net/http's check of a Host value (httpguts.ValidHostHeader):
// no controls, spaces or characters outside a host[:port].
func validHost(h string) bool {
	for i := 0; i < len(h); i++ {
		if !hostChar[h[i]] {
			return false
		}
	}
	return true
}

var hostChar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!$%&'()*+,-.:;=[]_~" {
		t[c] = true
	}
	return t
}()

// reqBody is a request's body, read from the connection: by length or
// chunked, with 100 Continue sent before the first read when the client
// asked for it.
type reqBody struct {
	c       *conn
	left    int64
	chunked bool
	chunks  chunkedReader
	expect  bool
	done    bool
	err     error
}

func (b *reqBody) reset() {
	*b = reqBody{c: b.c}
}

func (b *reqBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.done {
		return 0, io.EOF
	}
	if b.expect {
		b.expect = false
		if err := b.c.resp.sendContinue(); err != nil {
			b.err = err
			return 0, err
		}
	}
	if len(p) == 0 {
		return 0, nil
	}
	b.c.flushBeforeWait()
	br := b.c.br
	if b.chunked {
		n, err := b.chunks.read(br, p)
		if err == io.EOF {
			if err = b.readTrailer(); err != nil {
				return 0, b.fail(err)
			}
			b.done = true
			return 0, io.EOF
		}
		if err != nil {
			return n, b.fail(err)
		}
		return n, nil
	}
	n, err := readLength(br, p, &b.left)
	if b.left == 0 {
		b.done = true
		return n, nil
	}
	if err != nil {
		return n, b.fail(err)
	}
	return n, nil
}

func (b *reqBody) readTrailer() error {
	fs, err := readTrailer(&b.c.lr, b.c.s.cfg.MaxHeaderBytes, nil)
	if err != nil {
		return err
	}
	r := &b.c.req
	for _, f := range fs {
		if r.Trailer == nil {
			r.Trailer = http.Header{}
		}
		r.Trailer[f.Key] = append(r.Trailer[f.Key], f.Value)
	}
	return nil
}

func (b *reqBody) fail(err error) error {
	b.err = err
	return err
}

// Close leaves the rest of the body unread: the connection then closes
// after the answer.
func (b *reqBody) Close() error { return nil }

// drained reports that the body was read to its end (or there was none),
// so the connection can carry another request.
func (b *reqBody) drained() bool { return b.done && b.err == nil }
