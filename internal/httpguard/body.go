package httpguard

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ClientError is a failure reading the client's request body: the client
// was too slow (Timeout), sent a malformed body, sent too much (the cause is
// an *http.MaxBytesError), or went away. It is never the upstream's fault.
type ClientError struct{ Err error }

func (e *ClientError) Error() string { return "reading the client's request body: " + e.Err.Error() }
func (e *ClientError) Unwrap() error { return e.Err }

// Timeout reports that the client did not send its body in time.
func (e *ClientError) Timeout() bool {
	if errors.Is(e.Err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(e.Err, &ne) && ne.Timeout()
}

// ErrDetached is what a Body returns once its handler has returned.
var ErrDetached = errors.New("request body read after its handler returned")

// Body is a request body read under an idle deadline: before every read the
// connection's read deadline is moved to now + idle, so a client that stops
// sending for that long fails the read with a *ClientError (nginx's
// client_body_timeout); at the end of the body the deadline is cleared.
// It also tells whether a read is waiting on the client right now, which
// is how time spent on a slow client is told from time spent on an
// upstream.
//
// A Body must be detached (Detach) before its handler returns: a transport
// may still read it from another goroutine, and it must not touch the
// deadlines of the connection's next request.
type Body struct {
	src  io.ReadCloser
	rc   *http.ResponseController
	idle time.Duration

	mu       sync.Mutex // orders deadline changes against Detach
	detached bool

	waiting atomic.Int32 // reads in progress
	started atomic.Bool  // something read from it
	eof     atomic.Bool
	err     atomic.Pointer[ClientError]
}

// NewBody guards src, the body of the request w answers, with an idle
// deadline of idle (DefaultBodyIdleTimeout when zero). The first deadline
// is set at once, so even a body nobody reads cannot hold the connection
// longer than idle after the answer.
func NewBody(w http.ResponseWriter, src io.ReadCloser, idle time.Duration) *Body {
	if idle <= 0 {
		idle = DefaultBodyIdleTimeout
	}
	b := &Body{src: src, rc: http.NewResponseController(w), idle: idle}
	b.setDeadline(time.Now().Add(idle))
	return b
}

// Read reads from the client, moving the read deadline first.
func (b *Body) Read(p []byte) (int, error) {
	if e := b.err.Load(); e != nil {
		return 0, e
	}
	if b.eof.Load() {
		return 0, io.EOF
	}
	if !b.setDeadline(time.Now().Add(b.idle)) {
		return 0, ErrDetached
	}
	b.waiting.Add(1)
	n, err := b.src.Read(p)
	b.waiting.Add(-1)
	b.started.Store(true)
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		b.eof.Store(true)
		b.setDeadline(time.Time{})
		return n, io.EOF
	default:
		b.err.CompareAndSwap(nil, &ClientError{Err: err})
		return n, b.err.Load()
	}
	return n, nil
}

// Close does nothing: the server closes the request body itself.
func (b *Body) Close() error { return nil }

// Waiting reports whether a read is waiting on the client now.
func (b *Body) Waiting() bool { return b.waiting.Load() > 0 }

// Started reports whether anything was read from the body.
func (b *Body) Started() bool { return b.started.Load() }

// Complete reports that the whole body was read.
func (b *Body) Complete() bool { return b.eof.Load() }

// Err returns the failure reading the body, if any.
func (b *Body) Err() *ClientError { return b.err.Load() }

// Expire ends the wait for the client at once: a read in progress, and
// every later one, fails with a timeout *ClientError.
func (b *Body) Expire() {
	b.setDeadline(time.Unix(1, 0))
}

// Detach stops the body from touching the connection: later reads fail
// with ErrDetached. Call it before the handler returns.
func (b *Body) Detach() {
	b.mu.Lock()
	b.detached = true
	b.mu.Unlock()
}

// setDeadline sets the read deadline unless detached; false when detached.
// A transport that cannot set deadlines (http.ErrNotSupported) is left
// alone: the body then has no idle timeout.
func (b *Body) setDeadline(t time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.detached {
		return false
	}
	_ = b.rc.SetReadDeadline(t)
	return true
}
