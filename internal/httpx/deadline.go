package httpx

import (
	"context"
	"net/http"
	"time"
)

// DefaultRequestTimeout bounds a request's engine calls unless a node is
// configured otherwise (--request-timeout).
const DefaultRequestTimeout = 5 * time.Second

// Deadline bounds every request of h: its context ends after d, so every
// engine call made for the request ends by then too and the client gets
// a 503 with a retry hint (Errors.Write) instead of waiting for as long as
// it is willing to. d <= 0 means DefaultRequestTimeout. Streams and long
// polls set their own bounds and are not wrapped.
func Deadline(d time.Duration, h http.Handler) http.Handler {
	d = RequestTimeout(d)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// WriteTimeout bounds the writing of every answer of h to d from the
// request's start, so a client that stops reading cannot hold a
// connection and its goroutine. Long-lived answers move the deadline on
// as they go: the SSE writer before each write, long polls with
// ExtendWrite.
func WriteTimeout(d time.Duration, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d))
		h.ServeHTTP(w, r)
	})
}

// ExtendWrite lets the answer to r be written until d from now (a long
// poll that may wait longer than the listener's write bound).
func ExtendWrite(w http.ResponseWriter, d time.Duration) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d))
}

// WatchClient asks the server to end r's context when its client goes
// away before the answer, for a handler about to wait long without
// writing (a long poll): internal/h1 watches the connection only when
// asked; net/http always does.
func WatchClient(w http.ResponseWriter) {
	for {
		if x, ok := w.(interface{ WatchClient() }); ok {
			x.WatchClient()
			return
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return
		}
		w = u.Unwrap()
	}
}

// RequestTimeout is d, or DefaultRequestTimeout when d <= 0.
func RequestTimeout(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultRequestTimeout
	}
	return d
}
