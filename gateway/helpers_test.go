package gateway

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/plexushq/plexus/clock"
	"github.com/plexushq/plexus/internal/httpguard"
	"github.com/plexushq/plexus/registry"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// staticDiscovery is a Discovery whose services tests set by hand; it
// stands in for the registry cache where the registry is not the point.
type staticDiscovery struct {
	mu   sync.Mutex
	gen  uint64
	snap atomic.Pointer[map[string]*registry.ServiceSnapshot]
}

func newDiscovery() *staticDiscovery {
	d := &staticDiscovery{}
	m := map[string]*registry.ServiceSnapshot{}
	d.snap.Store(&m)
	return d
}

func (d *staticDiscovery) Service(name string) *registry.ServiceSnapshot {
	return (*d.snap.Load())[name]
}

func (d *staticDiscovery) Services() []*registry.ServiceSnapshot {
	var out []*registry.ServiceSnapshot
	for _, s := range *d.snap.Load() {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// set replaces a service's instances: each URL becomes a healthy instance
// i0, i1, … unless its status is given as "url|status".
func (d *staticDiscovery) set(name string, urls ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gen++
	s := &registry.ServiceSnapshot{Name: name, Gen: d.gen}
	for i, u := range urls {
		in := &registry.Instance{ID: fmt.Sprintf("i%d", i), Service: name, URL: u, Weight: 1, Status: registry.StatusHealthy}
		if n := len(u); n > 10 && u[n-10:] == "|unhealthy" {
			in.URL, in.Status = u[:n-10], registry.StatusUnhealthy
		}
		s.Instances = append(s.Instances, in)
		if in.Status == registry.StatusHealthy {
			s.Healthy = append(s.Healthy, in)
		}
	}
	m := map[string]*registry.ServiceSnapshot{}
	for k, v := range *d.snap.Load() {
		m[k] = v
	}
	m[name] = s
	d.snap.Store(&m)
}

func newClock() *clock.Manual { return clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) }

// harness is a gateway behind a real loopback listener.
type harness struct {
	g    *Gateway
	disc *staticDiscovery
	url  string
}

func startGateway(t *testing.T, cfg Config, opts Options) *harness {
	t.Helper()
	if opts.Discovery == nil {
		opts.Discovery = newDiscovery()
	}
	g, url := serveGateway(t, cfg, opts, httpguard.Limits{})
	h := &harness{g: g, url: url}
	h.disc, _ = opts.Discovery.(*staticDiscovery)
	return h
}

// The gateway's HTTP/1.1 transports: every data-plane test runs on each
// (eachTransport), as a subtest named after it.
const (
	transportStd = "net-http" // net/http's server (TLS and HTTP/2 listeners)
	transportH1  = "h1"       // internal/h1 (cleartext listeners)
)

// eachTransport runs test once per transport.
func eachTransport(t *testing.T, test func(t *testing.T)) {
	for _, tr := range []string{transportStd, transportH1} {
		t.Run(tr, test)
	}
}

// transportOf is the transport a test runs on: the subtest eachTransport
// made, found in the test's name; net/http outside eachTransport.
func transportOf(t testing.TB) string {
	parts := strings.Split(t.Name(), "/")
	if len(parts) > 1 && parts[1] == transportH1 {
		return transportH1
	}
	return transportStd
}

// serveGateway runs a gateway on a loopback port behind the test's
// transport, with the limits the node gives its listeners, and returns
// it with its base URL.
func serveGateway(t *testing.T, cfg Config, opts Options, lim httpguard.Limits) (*Gateway, string) {
	t.Helper()
	g := newStartedGateway(t, cfg, opts)
	return g, listen(t, g, transportOf(t), lim)
}

// listen serves h on a loopback port with the transport's server and
// the given limits, until the test ends; it returns the base URL.
func listen(tb testing.TB, h http.Handler, transport string, lim httpguard.Limits) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	type server interface {
		Serve(net.Listener) error
		Close() error
	}
	var srv server
	if transport == transportH1 {
		srv = httpguard.NewH1Server(h, lim, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	} else {
		hs := httpguard.NewServer(h, lim)
		hs.ErrorLog = log.New(io.Discard, "", 0)
		srv = hs
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	tb.Cleanup(func() { // before the gateway's Stop (cleanups run last first)
		_ = srv.Close()
		<-done
	})
	return "http://" + ln.Addr().String()
}

// newStartedGateway builds and starts a gateway (quiet log by default) and
// stops it when the test ends, after every later cleanup.
func newStartedGateway(t *testing.T, cfg Config, opts Options) *Gateway {
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
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := g.Stop(ctx); err != nil {
			t.Errorf("gateway stop: %v", err)
		}
	})
	return g
}

// backend starts a loopback HTTP server.
func backend(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(func() {
		s.CloseClientConnections()
		s.Close()
	})
	return s
}

// client is an HTTP client with its own connection pool, closed at cleanup.
func client(t *testing.T) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

func do(t *testing.T, c *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, b
}

func mustReq(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func intp(i int) *int           { return &i }
func floatp(f float64) *float64 { return &f }

func testCounter(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}
