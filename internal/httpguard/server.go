package httpguard

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/plexushq/plexus/internal/h1"
)

// Defaults of Limits; docs/gateway.md lists them beside nginx's, Envoy's,
// Caddy's and HAProxy's.
const (
	// DefaultReadHeaderTimeout bounds the request line and headers (nginx
	// client_header_timeout is 60s; 10s is plenty on any real network).
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultBodyIdleTimeout is the longest wait for the next bytes of a
	// request body (nginx client_body_timeout: 60s between two reads).
	DefaultBodyIdleTimeout = 60 * time.Second
	// DefaultSendIdleTimeout is the longest wait for a client to take the
	// next bytes of an answer (nginx send_timeout: 60s between two writes).
	DefaultSendIdleTimeout = 60 * time.Second
	// DefaultIdleTimeout closes keep-alive connections idle this long.
	DefaultIdleTimeout = 120 * time.Second
	// DefaultMaxHeaderBytes bounds the request line and headers (431 beyond).
	DefaultMaxHeaderBytes = 64 << 10
)

// Limits bound what one client can hold on a listener. Zero fields take the
// defaults above.
type Limits struct {
	// ReadHeaderTimeout bounds reading the request line and headers; a
	// client slower than that has its connection closed. Default 10s.
	ReadHeaderTimeout time.Duration
	// BodyIdleTimeout is the longest wait for the next bytes of a request
	// body; then reading fails with a *ClientError whose Timeout is true.
	// Default 60s.
	BodyIdleTimeout time.Duration
	// SendIdleTimeout is the longest wait for the client to take the next
	// bytes of an answer the gateway streams. Default 60s.
	SendIdleTimeout time.Duration
	// IdleTimeout closes keep-alive connections with no request this long.
	// Default 120s.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers. Default 64 KiB.
	MaxHeaderBytes int
}

// WithDefaults returns l with its zero fields set to the defaults.
func (l Limits) WithDefaults() Limits {
	if l.ReadHeaderTimeout <= 0 {
		l.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if l.BodyIdleTimeout <= 0 {
		l.BodyIdleTimeout = DefaultBodyIdleTimeout
	}
	if l.SendIdleTimeout <= 0 {
		l.SendIdleTimeout = DefaultSendIdleTimeout
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = DefaultIdleTimeout
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	return l
}

// NewServer returns an http.Server for h with l's timeouts and header
// limit. It sets no ReadTimeout or WriteTimeout: those would cut long
// uploads, downloads and streams; bodies are bounded between reads instead
// (Body), and answers between writes by whoever streams them.
func NewServer(h http.Handler, l Limits) *http.Server {
	l = l.WithDefaults()
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
	}
}

// NewH1Server returns the fast HTTP/1.1 server (internal/h1) for h with
// l's header timeout, idle timeout and header limit — the same limits
// NewServer gives net/http. Bodies are bounded between reads by the
// handlers (Body), answers between writes, exactly as with net/http:
// both servers take the deadlines through http.ResponseController. base
// is the parent of every request's context (nil: Background).
func NewH1Server(h http.Handler, l Limits, base context.Context, log *slog.Logger) *h1.Server {
	l = l.WithDefaults()
	return h1.NewServer(h1.ServerConfig{Handler: h, ReadHeaderTimeout: l.ReadHeaderTimeout, IdleTimeout: l.IdleTimeout,
		MaxHeaderBytes: l.MaxHeaderBytes, BaseContext: base, Log: log})
}
