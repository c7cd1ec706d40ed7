package gateway

import (
	"io"
	"log"
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
	g := newStartedGateway(t, cfg, opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httpguard.NewServer(g, lim)
	srv.ErrorLog = log.New(io.Discard, "", 0)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() { // before the gateway's Stop (cleanups run last first)
		_ = srv.Close()
		<-done
	})
	return g, "http://" + ln.Addr().String()
}
