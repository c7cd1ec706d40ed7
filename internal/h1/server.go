package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// ServerConfig configures a Server. Handler is required; zero durations
// and sizes take net/http's behaviour as httpguard sets it up.
type ServerConfig struct {
	Handler http.Handler
	// ReadHeaderTimeout bounds reading a request head (from its first
	// byte); a slower client's connection is closed. Default 10s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive connection without a new request
	// this long. Default 120s.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request line and headers (431 beyond).
	// Default 64 KiB.
	MaxHeaderBytes int
	// BaseContext is the parent of every request's context. Default
	// context.Background().
	BaseContext context.Context
	// Log receives connection-level failures (a handler's panic). Default
	// slog.Default().
	Log *slog.Logger
}

// Server serves HTTP/1.1 (and 1.0) on cleartext connections to a
// net/http Handler, with net/http's semantics where a handler can see
// them — http.Request, ResponseWriter, Flusher, Hijacker, read and write
// deadlines through http.ResponseController, 100 Continue sent when the
// handler first reads the body, trailers — but without its per-request
// allocations and goroutines: a connection's request, header map, body
// reader and response writer are reused for every request on it. Request
// heads are parsed strictly (request.go).
type Server struct {
	cfg     ServerConfig
	mu      sync.Mutex
	lns     map[net.Listener]struct{}
	conns   map[*conn]struct{}
	closing atomic.Bool
	wg      sync.WaitGroup
}

// NewServer returns a Server for cfg.
func NewServer(cfg ServerConfig) *Server {
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = 10 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 120 * time.Second
	}
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = 64 << 10
	}
	if cfg.BaseContext == nil {
		cfg.BaseContext = context.Background()
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Server{cfg: cfg, lns: map[net.Listener]struct{}{}, conns: map[*conn]struct{}{}}
}

// ErrServerClosed is what Serve returns after Shutdown or Close.
var ErrServerClosed = http.ErrServerClosed

// Serve accepts connections on ln and serves each on its own goroutine
// until Shutdown or Close; it then returns ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.lns[ln] = struct{}{}
	s.mu.Unlock()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() { // EMFILE and the like: wait and try again
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		c := newConn(s, nc)
		if !s.track(c) {
			_ = nc.Close()
			return ErrServerClosed
		}
		go c.serve()
	}
}

func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// Shutdown stops accepting, closes idle connections, and waits for the
// requests in flight (their connections close after their answer) until
// ctx ends; then it closes what is left and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeListeners()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		s.closeIdle()
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			s.closeAll()
			<-done
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.closeListeners()
	s.closeAll()
	s.wg.Wait()
	return nil
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing.Store(true)
	for ln := range s.lns {
		_ = ln.Close()
	}
	clear(s.lns)
}

func (s *Server) closeIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.Load() == stateIdle {
			_ = c.nc.Close()
		}
	}
}

// closeAll closes every connection and ends its requests' contexts, so
// handlers waiting on something else (an upstream) return too.
func (s *Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.cancel()
		_ = c.nc.Close()
	}
}

// Connection states, for Shutdown.
const (
	stateIdle   int32 = iota // between requests
	stateActive              // reading a head or serving a request
)

// conn is one client connection; its request, header map, body reader
// and response writer are reused by every request on it.
type conn struct {
	s      *Server
	nc     net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	lr     lineReader
	remote string
	state  atomic.Int32
	ctx    context.Context
	cancel context.CancelFunc

	cr       connReader
	watching bool          // a goroutine watches for the client going away
	watched  chan struct{} // closed when it stopped
	req      http.Request
	url      urlParts
	vals     []string // the header values of one request, one allocation
	body     reqBody
	resp     response
	hijacked bool
	// A handler moved the connection's read or write deadline
	// (http.ResponseController): the next request must not inherit it.
	readDeadlineSet, writeDeadlineSet bool
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{s: s, nc: nc, remote: nc.RemoteAddr().String(), bw: bufio.NewWriterSize(nc, 4<<10)}
	c.cr.nc = nc
	c.br = bufio.NewReaderSize(&c.cr, 4<<10)
	c.lr.br = c.br
	c.ctx, c.cancel = context.WithCancel(s.cfg.BaseContext)
	c.req = *(&http.Request{}).WithContext(c.ctx)
	c.req.Header = http.Header{}
	c.req.RemoteAddr = c.remote
	c.req.URL = &c.url.u
	c.resp.c = c
	c.resp.header = http.Header{}
	c.body.c = c
	return c
}

// serve reads and serves requests until the connection ends.
func (c *conn) serve() {
	defer func() {
		if p := recover(); p != nil && p != http.ErrAbortHandler {
			buf := make([]byte, 16<<10)
			buf = buf[:runtime.Stack(buf, false)]
			c.s.cfg.Log.Error("h1: handler panicked; connection closed", "remote", c.remote, "panic", p, "stack", string(buf))
		}
		c.cancel()
		if !c.hijacked {
			_ = c.nc.Close()
		}
		c.s.untrack(c)
	}()
	for first := true; ; first = false {
		if !c.next(first) {
			return
		}
	}
}

// next serves one request; false when the connection must end.
func (c *conn) next(first bool) bool {
	c.state.Store(stateIdle)
	if c.s.closing.Load() {
		return false
	}
	wait := c.s.cfg.IdleTimeout
	if first {
		wait = c.s.cfg.ReadHeaderTimeout
	}
	fresh := c.br.Buffered() == 0
	if fresh {
		if c.bw.Buffered() > 0 && c.bw.Flush() != nil { // pipelined answers waited for this
			return false
		}
		_ = c.nc.SetReadDeadline(time.Now().Add(wait))
		if _, err := c.br.Peek(1); err != nil {
			return false
		}
	}
	c.state.Store(stateActive)
	// The head still has to come, or a read deadline the last handler set
	// would bound this pipelined request: it gets the header timeout.
	if !c.headBuffered() || (c.readDeadlineSet && !fresh) {
		c.flushBeforeWait()
		_ = c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.ReadHeaderTimeout))
	}
	c.readDeadlineSet = false
	if err := c.readRequest(); err != nil {
		c.refuse(err)
		return false
	}
	if c.writeDeadlineSet { // the last handler's write deadline bounded its answer only (net/http clears it too)
		c.writeDeadlineSet = false
		_ = c.nc.SetWriteDeadline(time.Time{})
	}
	c.resp.reset(&c.req)
	c.s.cfg.Handler.ServeHTTP(&c.resp, &c.req)
	c.stopWatch()
	if c.hijacked || c.ctx.Err() != nil {
		return false
	}
	keep := c.resp.finish()
	if !c.body.drained() {
		c.closeWriteAndWait()
		return false
	}
	if !keep {
		_ = c.bw.Flush()
		return false
	}
	if c.br.Buffered() == 0 {
		return c.bw.Flush() == nil
	}
	return true // a pipelined request is waiting: its answer joins this one's write
}

// flushBeforeWait sends the answers held back for pipelining before a
// read that may wait on the client: the client may wait for them before
// it sends more (net/http never holds an answer back).
func (c *conn) flushBeforeWait() {
	if c.bw.Buffered() > 0 && c.br.Buffered() == 0 {
		_ = c.bw.Flush() // a failure fails the answer's own write later
	}
}

// headBuffered reports that a whole request head is already read in, so
// reading it cannot wait on the client (one deadline change saved).
func (c *conn) headBuffered() bool {
	b, _ := c.br.Peek(c.br.Buffered())
	return bytes.Contains(b, crlfcrlf) || bytes.Contains(b, lflf)
}

var crlfcrlf, lflf = []byte("\r\n\r\n"), []byte("\n\n")

// watch starts noticing that the client goes away while an answer
// streams (net/http notices it for every request with a goroutine of its
// own; here only streams pay for one): a read of the connection that ends
// cancels the connection's context, and so the request's. A byte the
// client sends meanwhile is kept for the next request.
func (c *conn) watch() {
	if c.watching || c.hijacked || c.br.Buffered() > 0 || !c.body.drained() {
		return
	}
	c.watching = true
	c.watched = make(chan struct{})
	_ = c.nc.SetReadDeadline(time.Time{}) // an idle deadline left from before the request must not end the watch
	go func() {
		defer close(c.watched)
		var b [1]byte
		n, err := c.nc.Read(b[:])
		if n > 0 {
			c.cr.saved, c.cr.has = b[0], true
		}
		if err != nil && !isTimeout(err) {
			c.cancel()
		}
	}()
}

// stopWatch ends the watch when the answer is complete.
func (c *conn) stopWatch() {
	if !c.watching {
		return
	}
	_ = c.nc.SetReadDeadline(aLongTimeAgo)
	<-c.watched
	c.watching = false
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// connReader reads the connection, first giving back a byte the watch
// read.
type connReader struct {
	nc    net.Conn
	saved byte
	has   bool
}

func (r *connReader) Read(p []byte) (int, error) {
	if r.has && len(p) > 0 {
		p[0], r.has = r.saved, false
		return 1, nil
	}
	return r.nc.Read(p)
}

// refuse answers a request that could not be read (400, 431, 501, 505)
// and closes; a connection that just ended gets nothing.
func (c *conn) refuse(err error) {
	var re *requestError
	if !errors.As(err, &re) {
		return
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = c.bw.WriteString(statusLine(re.status))
	_, _ = c.bw.WriteString("Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n")
	_, _ = c.bw.WriteString(re.msg)
	c.closeWriteAndWait()
}

// rstAvoidanceDelay is how long a connection stays open after its last
// answer when the client may still be sending (net/http waits as long):
// closing at once with unread bytes would reset the connection, and the
// client could lose the answer.
const rstAvoidanceDelay = 500 * time.Millisecond

// closeWriteAndWait sends what is buffered and the end of the stream,
// then waits a little before the connection is closed.
func (c *conn) closeWriteAndWait() {
	_ = c.bw.Flush()
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	time.Sleep(rstAvoidanceDelay)
}
