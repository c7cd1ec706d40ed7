package server

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"

	"github.com/plexushq/plexus/internal/h1"
	"github.com/plexushq/plexus/internal/httpguard"
	"github.com/plexushq/plexus/internal/httpx"
)

// listener is one HTTP server of the node with a graceful shutdown: it stops
// accepting, tells long-lived handlers to end (httpx.Stopping), and waits for
// in-flight requests, bounded by ctx.
type listener struct {
	name     string
	srv      *http.Server
	fast     *h1.Server // serves instead of srv when set (the gateway's cleartext listener)
	ln       net.Listener
	stopping chan struct{}
	stopOnce sync.Once
	done     chan error
	log      *slog.Logger
}

// newListener serves h on ln, a port the node bound before it opened the
// store (Node.bindPorts), with the client limits every Plexus listener has
// (httpguard): a header timeout, a keep-alive idle timeout and a header
// size limit; request bodies are bounded between reads by the handlers
// (httpguard.Body), not by a ReadTimeout that would cut long uploads.
func newListener(name string, ln net.Listener, h http.Handler, tlsCfg *tls.Config, lim httpguard.Limits, log *slog.Logger) *listener {
	l := &listener{name: name, ln: ln, stopping: make(chan struct{}), done: make(chan error, 1), log: log}
	base := httpx.WithStopping(context.Background(), l.stopping)
	l.srv = httpguard.NewServer(h, lim)
	l.srv.BaseContext = func(net.Listener) context.Context { return base }
	l.srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	if tlsCfg != nil {
		// ServeTLS negotiates HTTP/2 (h2) and HTTP/1.1 over TLS.
		l.srv.TLSConfig = tlsCfg
	}
	return l
}

func (l *listener) Addr() string { return l.ln.Addr().String() }

// loopback reports that the listener accepts connections from this host
// only.
func (l *listener) loopback() bool {
	a, ok := l.ln.Addr().(*net.TCPAddr)
	return ok && a.IP.IsLoopback()
}

// useH1 serves the listener with internal/h1 instead of net/http: the
// same handler and limits, without net/http's per-request costs. Only
// for cleartext HTTP/1.1; TLS listeners keep net/http (HTTP/2).
func (l *listener) useH1(lim httpguard.Limits) {
	l.fast = httpguard.NewH1Server(l.srv.Handler, lim, l.srv.BaseContext(l.ln), l.log)
}

func (l *listener) serve() {
	go func() {
		var err error
		if l.fast != nil {
			err = l.fast.Serve(l.ln)
		} else if l.srv.TLSConfig != nil {
			err = l.srv.ServeTLS(l.ln, "", "")
		} else {
			err = l.srv.Serve(l.ln)
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		l.done <- err
	}()
}

// shutdown drains the listener; when ctx ends first it closes what is left.
func (l *listener) shutdown(ctx context.Context) error {
	l.stopOnce.Do(func() { close(l.stopping) })
	var err error
	if l.fast != nil {
		err = l.fast.Shutdown(ctx) // closes what is left itself when ctx ends
	} else if err = l.srv.Shutdown(ctx); err != nil {
		_ = l.srv.Close()
	}
	if err != nil {
		l.log.Warn("listener did not drain in time; closing connections", "listener", l.name, "err", err)
	}
	if serr := <-l.done; serr != nil && err == nil {
		err = serr
	}
	return err
}
