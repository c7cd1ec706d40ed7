package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"time"
)

// Field is one header field. Keys of answers are in canonical form
// (net/http's CanonicalHeaderKey); keys of requests are written as given.
type Field struct{ Key, Value string }

// Upstream is where requests go: an address and whether to speak TLS.
type Upstream struct{ key hostKey }

// UpstreamOf reads an http or https URL's address (the scheme's port when
// it names none).
func UpstreamOf(u *url.URL) (Upstream, error) {
	port := u.Port()
	switch u.Scheme {
	case "http":
		if port == "" {
			port = "80"
		}
	case "https":
		if port == "" {
			port = "443"
		}
	default:
		return Upstream{}, fmt.Errorf("h1: scheme %q: want http or https", u.Scheme)
	}
	if u.Hostname() == "" {
		return Upstream{}, fmt.Errorf("h1: %q has no host", u.String())
	}
	return Upstream{key: hostKey{addr: net.JoinHostPort(u.Hostname(), port), tls: u.Scheme == "https"}}, nil
}

// Request is one request to an upstream. The client writes the request
// line, Host, the fields of Header in order, and the body's framing
// (Content-Length, or Transfer-Encoding: chunked when ContentLength is
// -1); Header must carry none of those nor other hop-by-hop fields.
type Request struct {
	Method string
	// Target is the request-target as sent: the escaped path and query.
	Target string
	// Host is the Host header: the upstream's host[:port].
	Host   string
	Header []Field
	// Body is nil for none. Bodies up to 64 KiB with a known length are
	// written before the answer is read; larger and chunked ones are
	// written by a goroutine while the answer is read, so an upstream may
	// answer (and stream) before the body ends.
	Body io.Reader
	// ContentLength is Body's length, -1 when unknown (sent chunked).
	ContentLength int64
	// Trailer, when set, is called after a chunked body's end for the
	// trailer fields to send.
	Trailer func() []Field
	// Retryable lets the client send the request again on a new
	// connection when a pooled one turns out closed before any byte of an
	// answer (the upstream closed it while idle). Set it for idempotent
	// requests whose Body is nil or an io.Seeker.
	Retryable bool
}

// inlineBody is the largest body written before the answer is read.
const inlineBody = 64 << 10

func (r *Request) inline() bool {
	return r.Body == nil || (r.ContentLength >= 0 && r.ContentLength <= inlineBody)
}

func (r *Request) framedBody() bool {
	return r.Body != nil && r.ContentLength != 0
}

// Errors of Do. A failure to open the connection is the dialer's
// *net.OpError (Op "dial"), a TLS failure a *TLSError.
var (
	// ErrMalformedResponse is an answer that is not valid HTTP/1.1 or
	// whose framing is ambiguous.
	ErrMalformedResponse = errors.New("h1: malformed answer from upstream")
	// ErrHeaderTooLarge is an answer head over Config.MaxHeaderBytes.
	ErrHeaderTooLarge = errors.New("h1: answer head too large")
	// ErrInvalidRequest is a request that cannot be written safely (a
	// control character in a field, a space in the target).
	ErrInvalidRequest = errors.New("h1: invalid request")
	// errStale is a pooled connection the upstream had closed: the
	// answer ended before its first byte.
	errStale = errors.New("h1: connection closed by upstream before an answer")
)

// BodyError is a failure reading the request body from its source (the
// client), as opposed to a failure of the upstream.
type BodyError struct{ Err error }

func (e *BodyError) Error() string { return "reading the request body: " + e.Err.Error() }
func (e *BodyError) Unwrap() error { return e.Err }

// Do sends req to up and reads the head of its answer into resp, which
// the caller owns and may reuse after the answer's body is closed. On
// success the caller must close resp.Body() (or Hijack a 101). When ctx
// ends before the answer is complete, the connection is cut and reads
// and writes fail.
func (c *Client) Do(ctx context.Context, up Upstream, req *Request, resp *Response) error {
	if c.closed.Load() {
		return errClosed
	}
	if err := validRequest(req); err != nil {
		return err
	}
	h := c.acquire(up.key)
	for tries := 0; ; tries++ {
		pc := h.get()
		if pc == nil {
			var err error
			if pc, err = h.dial(ctx); err != nil {
				h.inflight.Add(-1)
				return err
			}
		}
		err := pc.roundTrip(ctx, req, resp)
		if err == nil {
			return nil
		}
		if !pc.reused || !errors.Is(err, errStale) || !req.Retryable || tries >= 3 || ctx.Err() != nil || !rewind(req.Body) {
			h.inflight.Add(-1)
			if errors.Is(err, errStale) {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
}

func rewind(body io.Reader) bool {
	if body == nil {
		return true
	}
	s, ok := body.(io.Seeker)
	if !ok {
		return false
	}
	_, err := s.Seek(0, io.SeekStart)
	return err == nil
}

// pconn is one connection to an upstream.
type pconn struct {
	h         *host
	conn      net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	idleTimer *time.Timer
	abortFn   func()
	pooled    bool // in the idle pool; guarded by h.mu
	reused    bool // served an exchange before
	lr        lineReader
}

func newPconn(h *host, conn net.Conn) *pconn {
	pc := &pconn{h: h, conn: conn,
		br: bufio.NewReaderSize(conn, defaultReadBufferSize),
		bw: bufio.NewWriterSize(conn, defaultWriteBufferSize)}
	pc.lr.br = pc.br
	pc.abortFn = pc.abort
	pc.idleTimer = time.AfterFunc(time.Hour, func() { h.expire(pc) })
	pc.idleTimer.Stop()
	return pc
}

// aLongTimeAgo is a deadline that makes every pending and later I/O fail.
var aLongTimeAgo = time.Unix(1, 0)

func (pc *pconn) abort() { _ = pc.conn.SetDeadline(aLongTimeAgo) }

func (pc *pconn) close() {
	pc.idleTimer.Stop()
	_ = pc.conn.Close()
}

// roundTrip writes req and reads the answer's head; on error the
// connection is closed.
func (pc *pconn) roundTrip(ctx context.Context, req *Request, resp *Response) error {
	resp.reset()
	stop := noStop
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, pc.abortFn)
	}
	var wdone chan error
	var werr error
	if req.inline() {
		werr = pc.writeRequest(req)
	} else if werr = pc.writeHead(req); werr == nil {
		if werr = pc.bw.Flush(); werr == nil {
			wdone = make(chan error, 1)
			go func() { wdone <- pc.writeBody(req) }()
		}
	}
	var be *BodyError
	if errors.As(werr, &be) {
		stop()
		pc.close()
		return werr
	}
	// Even when writing failed, the upstream may have answered (an early
	// 413, say) before it closed: read the answer first.
	nothing, err := pc.readHead(req, resp)
	if err != nil {
		stop()
		pc.close()
		if wdone != nil {
			select { // a writer still waiting on its source ends on its own
			case e := <-wdone:
				werr = e
			default:
			}
		}
		switch {
		case errors.As(werr, &be):
			return werr
		case ctx.Err() != nil:
			return fmt.Errorf("h1: %w", context.Cause(ctx))
		case nothing && (werr == nil || pc.reused):
			return errStale
		case nothing:
			return werr
		}
		return err
	}
	resp.body.start(pc, stop, wdone, werr != nil)
	return nil
}

func noStop() bool { return true }
