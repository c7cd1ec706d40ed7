package h1

import (
	"io"
	"strconv"
	"sync"
)

// validRequest refuses what would let a request be read as another one
// upstream: a method that is not a token, a target with spaces or
// controls, field names that are not tokens, values with CR, LF or NUL.
func validRequest(r *Request) error {
	if !isToken(r.Method) || r.Target == "" || !validTarget(r.Target) || !validValue(r.Host) {
		return ErrInvalidRequest
	}
	for _, f := range r.Header {
		if !isToken(f.Key) || !validValue(f.Value) {
			return ErrInvalidRequest
		}
	}
	return nil
}

func validTarget(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\r' || c == '\n' || c == 0 {
			return false
		}
	}
	return true
}

// writeRequest writes the whole request and flushes it: one write for
// the head and a small body.
func (pc *pconn) writeRequest(r *Request) error {
	if err := pc.writeHead(r); err != nil {
		return err
	}
	return pc.writeBody(r)
}

// writeHead writes the request line and header; the body's framing comes
// from ContentLength.
func (pc *pconn) writeHead(r *Request) error {
	w := pc.bw
	_, _ = w.WriteString(r.Method)
	_ = w.WriteByte(' ')
	_, _ = w.WriteString(r.Target)
	_, _ = w.WriteString(" HTTP/1.1\r\nHost: ")
	_, _ = w.WriteString(r.Host)
	_, _ = w.WriteString("\r\n")
	for _, f := range r.Header {
		_, _ = w.WriteString(f.Key)
		_, _ = w.WriteString(": ")
		_, _ = w.WriteString(f.Value)
		_, _ = w.WriteString("\r\n")
	}
	switch {
	case r.framedBody() && r.ContentLength < 0:
		_, _ = w.WriteString("Transfer-Encoding: chunked\r\n")
	case r.framedBody():
		_, _ = w.WriteString("Content-Length: ")
		var b [20]byte
		_, _ = w.Write(strconv.AppendInt(b[:0], r.ContentLength, 10))
		_, _ = w.WriteString("\r\n")
	case bodyExpected(r.Method):
		_, _ = w.WriteString("Content-Length: 0\r\n")
	}
	_, err := w.WriteString("\r\n")
	return err
}

// bodyExpected: methods whose requests carry a body by convention get an
// explicit empty one, as net/http sends.
func bodyExpected(m string) bool { return m == "POST" || m == "PUT" || m == "PATCH" }

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// writeBody copies the body (chunked when its length is unknown), ends
// it, and flushes. A failed read of the source is a *BodyError; a write
// that fails, or a body shorter or longer than declared, cuts the
// connection, so a reader of the answer is not left waiting.
func (pc *pconn) writeBody(r *Request) error {
	err := pc.copyBody(r)
	if err == nil {
		err = pc.bw.Flush()
	}
	if err != nil {
		pc.abort()
	}
	return err
}

func (pc *pconn) copyBody(r *Request) error {
	if !r.framedBody() {
		return nil
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	chunked, stream := r.ContentLength < 0, !r.inline()
	var n int64
	for {
		nr, rerr := r.Body.Read(buf)
		if nr > 0 {
			n += int64(nr)
			if !chunked && n > r.ContentLength {
				return &BodyError{Err: errBodyLength}
			}
			if err := pc.writeChunk(buf[:nr], chunked, stream); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return &BodyError{Err: rerr}
		}
	}
	if !chunked {
		if n != r.ContentLength {
			return &BodyError{Err: io.ErrUnexpectedEOF}
		}
		return nil
	}
	return pc.endChunked(r)
}

var errBodyLength = errorString("request body longer than its Content-Length")

type errorString string

func (e errorString) Error() string { return string(e) }

// writeChunk writes p, as one chunk when chunked; a streamed body is
// flushed as it comes (flush), so the upstream sees what the client sent
// when the client sent it.
func (pc *pconn) writeChunk(p []byte, chunked, flush bool) error {
	w := pc.bw
	if chunked {
		var b [18]byte
		hex := strconv.AppendInt(b[:0], int64(len(p)), 16)
		hex = append(hex, '\r', '\n')
		_, _ = w.Write(hex)
	}
	_, _ = w.Write(p)
	if chunked {
		_, _ = w.WriteString("\r\n")
	}
	if flush {
		return w.Flush()
	}
	_, err := w.Write(nil) // a failed earlier write
	return err
}

// endChunked writes the last chunk and the trailer fields.
func (pc *pconn) endChunked(r *Request) error {
	w := pc.bw
	_, _ = w.WriteString("0\r\n")
	if r.Trailer != nil {
		for _, f := range r.Trailer() {
			if !isToken(f.Key) || !validValue(f.Value) {
				continue
			}
			_, _ = w.WriteString(f.Key)
			_, _ = w.WriteString(": ")
			_, _ = w.WriteString(f.Value)
			_, _ = w.WriteString("\r\n")
		}
	}
	_, err := w.WriteString("\r\n")
	return err
}

// isToken reports an RFC 9110 token (field names, methods).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenChar[s[i]] {
			return false
		}
	}
	return true
}

var tokenChar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()
