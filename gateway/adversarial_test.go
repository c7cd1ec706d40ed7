package gateway

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/plexushq/plexus/internal/gatewaytest"
	"github.com/plexushq/plexus/internal/httpguard"
)

// TestAdversarial runs the adversarial suite against the gateway on a
// listener configured as the node configures it (httpguard's server), with
// short body and header timeouts so their cases finish quickly.
func TestAdversarial(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for body and header timeouts")
	}
	lim := httpguard.Limits{BodyIdleTimeout: time.Second, ReadHeaderTimeout: 2 * time.Second}
	cfg, err := ParseConfig([]byte(gatewaytest.Config))
	if err != nil {
		t.Fatal(err)
	}
	disc := newDiscovery()
	_, base := serveGateway(t, cfg, Options{Discovery: disc, BodyIdleTimeout: lim.BodyIdleTimeout}, lim)
	gatewaytest.Run(t, gatewaytest.Target{
		BaseURL:           base,
		Register:          func(_ testing.TB, service string, urls ...string) { disc.set(service, urls...) },
		BodyIdleTimeout:   lim.BodyIdleTimeout,
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
	})
}

// serveGateway runs a gateway behind httpguard's server on a loopback
// port, as the node does, and returns it with its base URL.
func serveGateway(t *testing.T, cfg Config, opts Options, lim httpguard.Limits) (*Gateway, string) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	g, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httpguard.NewServer(g, lim)
	srv.ErrorLog = slog.NewLogLogger(opts.Logger.Handler(), slog.LevelDebug)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := g.Stop(ctx); err != nil {
			t.Errorf("gateway stop: %v", err)
		}
	})
	return g, "http://" + ln.Addr().String()
}
