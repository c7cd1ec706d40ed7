package gateway

import (
	"testing"
	"time"

	"github.com/plexushq/plexus/internal/gatewaytest"
	"github.com/plexushq/plexus/internal/httpguard"
)

// TestAdversarial runs the adversarial suite against the gateway on a
// listener configured as the node configures it (httpguard's server), with
// short body and header timeouts so their cases finish quickly.
func TestAdversarial(t *testing.T) { eachTransport(t, testAdversarial) }

func testAdversarial(t *testing.T) {
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
