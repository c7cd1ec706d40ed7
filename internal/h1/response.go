package h1

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// response is the http.ResponseWriter of a connection's current request.
// The head is written when the first body bytes go out, or at the end:
// a declared Content-Length is used as it is; without one, the first
// bytes (up to 4 KiB) wait for the handler to finish, to be sent with a
// Content-Length, and a longer or flushed body is sent chunked (HTTP/1.1)
// or until the connection closes (HTTP/1.0). Unlike net/http it never
// sniffs a Content-Type and never sorts the header.
type response struct {
	c        *conn
	req      *http.Request
	header   http.Header
	status   int
	wrote    bool  // WriteHeader was called (or implied)
	headOut  bool  // the head is in the write buffer
	length   int64 // declared Content-Length, -1 none
	written  int64
	chunked  bool
	closing  bool // Connection: close goes on the head
	noBody   bool // HEAD, 1xx, 204, 304
	pending  []byte
	hijacked bool
}

const maxPending = 4 << 10

func (w *response) reset(r *http.Request) {
	h, p := w.header, w.pending[:0]
	clear(h)
	*w = response{c: w.c, req: r, header: h, pending: p, length: -1}
}

func (w *response) Header() http.Header { return w.header }

// WriteHeader records the status; 1xx answers other than 101 are sent
// at once and the final one is still to come.
func (w *response) WriteHeader(code int) {
	if w.wrote || w.hijacked {
		return
	}
	if code < 100 || code > 999 {
		panic("h1: invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		_, _ = w.c.bw.WriteString(statusLine(code))
		w.writeFields(false)
		_, _ = w.c.bw.WriteString("\r\n")
		_ = w.c.bw.Flush()
		return
	}
	w.wrote, w.status = true, code
	if cl := w.header["Content-Length"]; len(cl) == 1 {
		if n, ok := parseLength(strings.TrimSpace(cl[0])); ok {
			w.length = n
		}
	}
	w.noBody = w.req.Method == http.MethodHead || code == 204 || code == 304 || code < 200
}

func (w *response) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.noBody {
		if w.req.Method == http.MethodHead {
			return len(p), nil
		}
		return 0, http.ErrBodyNotAllowed
	}
	if w.length >= 0 && w.written+int64(len(p)) > w.length {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if !w.headOut {
		if w.length < 0 && len(w.pending)+len(p) <= maxPending {
			w.pending = append(w.pending, p...)
			return len(p), nil
		}
		w.writeHead(false)
	}
	return len(p), w.writeBody(p)
}

// writeBody writes p in the body's framing.
func (w *response) writeBody(p []byte) error {
	bw := w.c.bw
	if w.chunked {
		if len(p) == 0 {
			return nil
		}
		var b [18]byte
		hex := strconv.AppendInt(b[:0], int64(len(p)), 16)
		_, _ = bw.Write(append(hex, '\r', '\n'))
		_, _ = bw.Write(p)
		_, err := bw.WriteString("\r\n")
		return err
	}
	_, err := bw.Write(p)
	return err
}

// writeHead writes the status line and header; final tells that the
// handler is done, so a body held back has its exact length.
func (w *response) writeHead(final bool) {
	w.headOut = true
	switch {
	case w.noBody || w.length >= 0:
	case final && len(w.header["Trailer"]) == 0: // declared trailers need chunks
		w.length = int64(len(w.pending))
	case w.req.ProtoMinor == 1:
		w.chunked = true
	default:
		w.closing = true // HTTP/1.0: the body ends with the connection
	}
	if w.req.Close || w.c.s.closing.Load() {
		w.closing = true
	}
	// A body that failed (a read timeout, too large) or that the handler
	// left unread ends the connection after this answer: say so, as
	// net/http does.
	if w.c.body.err != nil || (final && !w.c.body.drained()) {
		w.closing = true
	}
	if v := w.header["Connection"]; len(v) > 0 && hasToken(v[0], "close") {
		w.closing = true
	}
	bw := w.c.bw
	_, _ = bw.WriteString(statusLine(w.status))
	w.writeFields(true)
	switch {
	case w.chunked:
		_, _ = bw.WriteString("Transfer-Encoding: chunked\r\n")
	case w.length >= 0 && len(w.header["Content-Length"]) == 0 && !(w.noBody && w.req.Method != http.MethodHead):
		var b [20]byte
		_, _ = bw.WriteString("Content-Length: ")
		_, _ = bw.Write(strconv.AppendInt(b[:0], w.length, 10))
		_, _ = bw.WriteString("\r\n")
	}
	if w.closing {
		_, _ = bw.WriteString("Connection: close\r\n")
	} else if w.req.ProtoMinor == 0 {
		_, _ = bw.WriteString("Connection: keep-alive\r\n")
	}
	_, _ = bw.WriteString("\r\n")
	if len(w.pending) > 0 {
		p := w.pending
		w.pending = w.pending[:0]
		_ = w.writeBody(p)
	}
}

// writeFields writes the header map: fields the framing owns are left
// out (final) and values are written on one line each, CR and LF turned
// into spaces as net/http does.
func (w *response) writeFields(final bool) {
	bw := w.c.bw
	for k, vs := range w.header {
		if !isToken(k) {
			continue
		}
		switch k {
		case "Connection", "Transfer-Encoding", "Keep-Alive":
			continue
		case "Trailer":
			if !final {
				continue
			}
		case "Content-Length":
			if w.noBody && w.req.Method != http.MethodHead && w.status != 304 {
				continue
			}
		}
		if strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		for _, v := range vs {
			_, _ = bw.WriteString(k)
			_, _ = bw.WriteString(": ")
			if strings.ContainsAny(v, "\r\n") {
				v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
			}
			_, _ = bw.WriteString(v)
			_, _ = bw.WriteString("\r\n")
		}
	}
	if _, ok := w.header["Date"]; !ok && final {
		_, _ = bw.Write(dateLine())
	}
}

// Flush sends what is buffered, the head included.
func (w *response) Flush() {
	_ = w.FlushError()
}

// FlushError is Flush with its error (http.ResponseController uses it).
func (w *response) FlushError() error {
	if w.hijacked {
		return http.ErrHijacked
	}
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headOut {
		w.writeHead(false)
	}
	w.c.watch() // a flushed answer is a stream: notice the client leaving
	return w.c.bw.Flush()
}

// finish ends the answer after the handler returned: the head if not yet
// out, the last chunk and trailers. It reports whether the connection
// can carry another request.
func (w *response) finish() bool {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headOut {
		w.writeHead(true)
	}
	bw := w.c.bw
	if w.chunked {
		_, _ = bw.WriteString("0\r\n")
		w.writeTrailers()
		_, _ = bw.WriteString("\r\n")
	}
	if w.length >= 0 && !w.noBody && w.written != w.length {
		return false // the handler wrote less than it declared: the framing is off
	}
	return !w.closing
}

// writeTrailers writes the fields announced in Trailer and those set
// with http.TrailerPrefix.
func (w *response) writeTrailers() {
	bw := w.c.bw
	put := func(k string, vs []string) {
		if !isToken(k) {
			return
		}
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n") {
				continue
			}
			_, _ = bw.WriteString(k)
			_, _ = bw.WriteString(": ")
			_, _ = bw.WriteString(v)
			_, _ = bw.WriteString("\r\n")
		}
	}
	for _, decl := range w.header["Trailer"] {
		for _, k := range strings.Split(decl, ",") {
			k = http.CanonicalHeaderKey(strings.TrimSpace(k))
			put(k, w.header[k])
		}
	}
	for k, vs := range w.header {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			put(k[len(http.TrailerPrefix):], vs)
		}
	}
}

// sendContinue answers Expect: 100-continue, when the handler first reads
// the body.
func (w *response) sendContinue() error {
	if w.headOut {
		return nil
	}
	_, _ = w.c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
	return w.c.bw.Flush()
}

// Hijack hands the connection to the handler (protocol switches); what
// the client sent after the head is in the reader.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.headOut {
		return nil, nil, errors.New("h1: hijack after the answer began")
	}
	w.hijacked = true
	w.c.hijacked = true
	w.c.state.Store(stateActive)
	return w.c.nc, bufio.NewReadWriter(w.c.br, w.c.bw), nil
}

// WatchClient makes the request's context end when the client goes away
// before the answer (net/http notices that for every request; here a
// handler that waits long, a long poll, asks for it). It does nothing
// while the request's body is unread or another request is pipelined.
func (w *response) WatchClient() { w.c.watch() }

// SetReadDeadline and SetWriteDeadline are the connection's, for
// http.ResponseController; they bound this request and its answer only
// (the server sets its own for the next request, as net/http does).
func (w *response) SetReadDeadline(t time.Time) error {
	w.c.readDeadlineSet = true
	return w.c.nc.SetReadDeadline(t)
}

func (w *response) SetWriteDeadline(t time.Time) error {
	w.c.writeDeadlineSet = true
	return w.c.nc.SetWriteDeadline(t)
}

// statusLine returns "HTTP/1.1 NNN Reason\r\n" from a table built once.
func statusLine(code int) string {
	if code >= 100 && code < len(statusLines) && statusLines[code] != "" {
		return statusLines[code]
	}
	return "HTTP/1.1 " + strconv.Itoa(code) + " status code " + strconv.Itoa(code) + "\r\n"
}

var statusLines = func() (t [600]string) {
	for c := 100; c < 600; c++ {
		if txt := http.StatusText(c); txt != "" {
			t[c] = "HTTP/1.1 " + strconv.Itoa(c) + " " + txt + "\r\n"
		}
	}
	return t
}()

// dateLine is "Date: <now>\r\n", rebuilt at most once a second.
func dateLine() []byte {
	now := time.Now().Unix()
	if d := cachedDate.Load(); d != nil && d.sec == now {
		return d.line
	}
	d := &dated{sec: now}
	d.line = append([]byte("Date: "), time.Unix(now, 0).UTC().AppendFormat(nil, http.TimeFormat)...)
	d.line = append(d.line, '\r', '\n')
	cachedDate.Store(d)
	return d.line
}

type dated struct {
	sec  int64
	line []byte
}

var cachedDate atomic.Pointer[dated]
