// Package h1 is the gateway's HTTP/1.1 on the wire, both ways.
//
// Client (client.go, do.go, read.go, body.go, write.go) writes a request
// and reads its answer on the caller's goroutine over pooled keep-alive
// connections, with reused buffers and no header maps, and hands the
// connection over after a protocol switch (101). It replaced net/http's
// Transport on the gateway's hot path, whose two goroutines per
// connection, channel hand-offs and per-request header maps were most of
// the gateway's cost (docs/BENCHMARKS.md). It never follows redirects,
// never adds fields of its own beyond Host and the body's framing, never
// compresses, and reads answers strictly: an ambiguous framing is an
// error, not a guess.
//
// Server (server.go, request.go, response.go) serves a net/http Handler
// on cleartext connections with net/http's semantics where a handler can
// see them, reusing a connection's request, header map, body reader and
// writer for every request on it; request heads are read as strictly as
// net/http reads them or more (fuzzed against it).
//
// The wire code both share — head lines, fields, chunks — is wire.go.
package h1

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Config.
const (
	DefaultDialTimeout     = 5 * time.Second
	DefaultTLSTimeout      = 5 * time.Second
	DefaultIdleTimeout     = 4 * time.Second
	DefaultMaxIdlePerHost  = 1024
	DefaultMaxHeaderBytes  = 1 << 20
	defaultReadBufferSize  = 16 << 10
	defaultWriteBufferSize = 8 << 10
)

// Config configures a Client; the zero value works.
type Config struct {
	// DialTimeout bounds opening a TCP connection. Default 5s.
	DialTimeout time.Duration
	// TLSHandshakeTimeout bounds the TLS handshake to https upstreams. Default 5s.
	TLSHandshakeTimeout time.Duration
	// IdleTimeout closes a pooled connection unused this long; keep it
	// below the upstreams' keep-alive timeout. Default 4s.
	IdleTimeout time.Duration
	// MaxIdlePerHost bounds the idle connections kept per upstream. Default 1024.
	MaxIdlePerHost int
	// MaxHeaderBytes bounds an answer's status line and headers. Default 1 MiB.
	MaxHeaderBytes int
	// TLS is cloned for https upstreams (ServerName is set per host). Nil:
	// the system roots.
	TLS *tls.Config
	// Dial opens connections; nil: a net.Dialer with DialTimeout and a
	// 30s TCP keep-alive. Tests inject faults here.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

func (c Config) withDefaults() Config {
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.TLSHandshakeTimeout <= 0 {
		c.TLSHandshakeTimeout = DefaultTLSTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxIdlePerHost <= 0 {
		c.MaxIdlePerHost = DefaultMaxIdlePerHost
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.Dial == nil {
		d := &net.Dialer{Timeout: c.DialTimeout, KeepAlive: 30 * time.Second}
		c.Dial = d.DialContext
	}
	return c
}

// Client sends requests to upstreams over pooled connections. It is safe
// for concurrent use. It starts no goroutine of its own: idle connections
// are closed by timers, and CloseIdle closes them at once.
type Client struct {
	cfg    Config
	mu     sync.RWMutex
	hosts  map[hostKey]*host
	closed atomic.Bool
}

// hostKey names an upstream's connection pool.
type hostKey struct {
	addr string // host:port
	tls  bool
}

// New returns a Client with cfg (zero fields take the defaults).
func New(cfg Config) *Client {
	return &Client{cfg: cfg.withDefaults(), hosts: map[hostKey]*host{}}
}

// IdleTimeout is the configured idle timeout of pooled connections.
func (c *Client) IdleTimeout() time.Duration { return c.cfg.IdleTimeout }

// CloseIdle closes every idle connection and forgets upstreams without
// requests in flight. Connections in use are closed when their answer
// ends if Close was called; CloseIdle alone lets them return to the pool.
func (c *Client) CloseIdle() {
	c.mu.Lock()
	hs := make([]*host, 0, len(c.hosts))
	for k, h := range c.hosts {
		hs = append(hs, h)
		if h.inflight.Load() == 0 {
			delete(c.hosts, k)
		}
	}
	c.mu.Unlock()
	for _, h := range hs {
		h.closeIdle()
	}
}

// Close closes idle connections now and every other connection when its
// answer ends; the Client must not be used afterwards.
func (c *Client) Close() {
	c.closed.Store(true)
	c.CloseIdle()
}

// Sweep forgets upstreams that have neither idle connections nor
// requests in flight, so the pool map stays bounded by the upstreams in
// use. The gateway calls it now and then.
func (c *Client) Sweep() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, h := range c.hosts {
		if h.inflight.Load() == 0 && h.idleCount() == 0 {
			delete(c.hosts, k)
		}
	}
}

// acquire returns the pool of an upstream with one more request counted
// in flight; release undoes the count.
func (c *Client) acquire(k hostKey) *host {
	c.mu.RLock()
	h := c.hosts[k]
	if h != nil {
		h.inflight.Add(1)
	}
	c.mu.RUnlock()
	if h != nil {
		return h
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if h = c.hosts[k]; h == nil {
		h = &host{c: c, key: k}
		if k.tls {
			h.tlsName, _, _ = net.SplitHostPort(k.addr)
		}
		c.hosts[k] = h
	}
	h.inflight.Add(1)
	return h
}

// host is the pool of connections to one upstream address.
type host struct {
	c        *Client
	key      hostKey
	tlsName  string
	inflight atomic.Int64
	mu       sync.Mutex
	idle     []*pconn // most recently used last
}

func (h *host) idleCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.idle)
}

// get returns an idle connection, most recently used first; nil when
// there is none.
func (h *host) get() *pconn {
	h.mu.Lock()
	defer h.mu.Unlock()
	for n := len(h.idle); n > 0; n = len(h.idle) {
		pc := h.idle[n-1]
		h.idle[n-1] = nil
		h.idle = h.idle[:n-1]
		pc.pooled = false
		pc.idleTimer.Stop() // a timer that already fired finds pc gone from the pool
		return pc
	}
	return nil
}

// put returns a connection whose exchange ended cleanly to the pool; it
// is closed instead when the pool is full or the client is closing.
func (h *host) put(pc *pconn) {
	if h.c.closed.Load() {
		pc.close()
		return
	}
	h.mu.Lock()
	if len(h.idle) >= h.c.cfg.MaxIdlePerHost {
		h.mu.Unlock()
		pc.close()
		return
	}
	pc.pooled = true
	pc.reused = true
	h.idle = append(h.idle, pc)
	pc.idleTimer.Reset(h.c.cfg.IdleTimeout)
	h.mu.Unlock()
}

// expire is a pooled connection's idle timer: it leaves the pool closed.
func (h *host) expire(pc *pconn) {
	h.mu.Lock()
	if !pc.pooled {
		h.mu.Unlock()
		return // taken meanwhile
	}
	for i, x := range h.idle {
		if x == pc {
			copy(h.idle[i:], h.idle[i+1:])
			h.idle[len(h.idle)-1] = nil
			h.idle = h.idle[:len(h.idle)-1]
			break
		}
	}
	pc.pooled = false
	h.mu.Unlock()
	pc.close()
}

func (h *host) closeIdle() {
	h.mu.Lock()
	idle := h.idle
	h.idle = nil
	for _, pc := range idle {
		pc.pooled = false
		pc.idleTimer.Stop()
	}
	h.mu.Unlock()
	for _, pc := range idle {
		pc.close()
	}
}

// dial opens a new connection to the upstream, with TLS for https.
func (h *host) dial(ctx context.Context) (*pconn, error) {
	cfg := &h.c.cfg
	dctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	conn, err := cfg.Dial(dctx, "tcp", h.key.addr)
	cancel()
	if err != nil {
		return nil, err
	}
	if h.key.tls {
		if conn, err = h.handshake(ctx, conn); err != nil {
			return nil, err
		}
	}
	return newPconn(h, conn), nil
}

func (h *host) handshake(ctx context.Context, raw net.Conn) (net.Conn, error) {
	var tc *tls.Config
	if h.c.cfg.TLS != nil {
		tc = h.c.cfg.TLS.Clone()
	} else {
		tc = &tls.Config{}
	}
	if tc.ServerName == "" {
		tc.ServerName = h.tlsName
	}
	tc.NextProtos = []string{"http/1.1"}
	conn := tls.Client(raw, tc)
	hctx, cancel := context.WithTimeout(ctx, h.c.cfg.TLSHandshakeTimeout)
	defer cancel()
	if err := conn.HandshakeContext(hctx); err != nil {
		_ = raw.Close()
		return nil, &TLSError{Err: err}
	}
	return conn, nil
}

// TLSError is a failed TLS handshake with an upstream.
type TLSError struct{ Err error }

func (e *TLSError) Error() string { return "tls handshake with upstream: " + e.Err.Error() }
func (e *TLSError) Unwrap() error { return e.Err }

// errClosed is returned by a Client used after Close.
var errClosed = errors.New("h1: client closed")
