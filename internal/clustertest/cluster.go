// Package clustertest runs a real NATS JetStream cluster inside a test:
// several nats-server instances (the library Plexus embeds) in cluster mode
// on loopback, every client and route connection passing through a proxy
// the test controls. Kill severs a server's connections at once, as a
// machine that loses power would, before shutting it down, so the others
// find out by missed heartbeats and elect new leaders; Restart brings it
// back on its store.
package clustertest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Options tune a cluster. The zero value works.
type Options struct {
	// Size is the number of servers. Default 3; 1 runs a single server
	// without clustering (a stand-in for an external server a test can
	// kill).
	Size int
	// User and Password, when set, are required of every client.
	User, Password string
	// ClientOptions are what the harness's own clients (readiness checks,
	// Connect) add when Configure sets up other authentication or TLS.
	ClientOptions []nats.Option
	// MaxPayload is the servers' max_payload. Default the server's (1 MiB).
	MaxPayload int32
	// Rewrite replaces byte strings in what the servers send to clients
	// (each New as long as its Old): a server that claims another version
	// in its INFO, or drops a stream setting from its answers, without
	// being another server.
	Rewrite []Rewrite
	// Configure, when set, changes each server's options before it starts
	// (TLS, accounts, limits).
	Configure func(i int, o *server.Options)
	// Log, when set, receives the servers' warnings and errors (or set
	// CLUSTERTEST_LOG=1 to log them through t.Log).
	Log func(format string, args ...any)
}

// Cluster is a running test cluster.
type Cluster struct {
	t    testing.TB
	opts Options

	mu      sync.Mutex
	servers []*node
}

// node is one server slot: its store and fronts outlive restarts.
type node struct {
	name   string
	dir    string
	client *proxy   // what clients dial
	routes []*proxy // routes[j]: how this server reaches server j (nil for itself)
	srv    *server.Server
}

// deadAdvertise is advertised as every server's route address, so that no
// server dials another directly (bypassing the proxies) on gossip: only
// the configured routes, through the proxies, connect.
const deadAdvertise = "127.0.0.1:1"

// Start runs a cluster and waits until JetStream has a meta leader and
// every server is current. Everything is stopped when the test ends.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Size <= 0 {
		opts.Size = 3
	}
	if opts.Log == nil && os.Getenv("CLUSTERTEST_LOG") != "" {
		opts.Log = t.Logf
	}
	// The stores' directory first: cleanups run last-registered first, and
	// the servers must stop before their directory goes.
	base := t.TempDir()
	c := &Cluster{t: t, opts: opts}
	t.Cleanup(c.stop)
	for i := range opts.Size {
		n := &node{name: "s" + strconv.Itoa(i), dir: filepath.Join(base, "s"+strconv.Itoa(i))}
		var err error
		if n.client, err = newProxy(); err != nil {
			t.Fatal(err)
		}
		for _, rw := range opts.Rewrite {
			if len(rw.Old) != len(rw.New) || rw.Old == "" {
				t.Fatalf("rewrite %q -> %q: want non-empty strings of one length", rw.Old, rw.New)
			}
		}
		n.client.rewrite = opts.Rewrite
		n.routes = make([]*proxy, opts.Size)
		for j := range opts.Size {
			if j != i {
				if n.routes[j], err = newProxy(); err != nil {
					t.Fatal(err)
				}
			}
		}
		c.servers = append(c.servers, n)
	}
	for i := range c.servers {
		c.startServer(i)
	}
	c.WaitReady(60 * time.Second)
	return c
}

// Size is the number of server slots.
func (c *Cluster) Size() int { return len(c.servers) }

// URLs are the client addresses of every server (their fronts), for
// engine.Config.URLs.
func (c *Cluster) URLs() []string {
	out := make([]string, len(c.servers))
	for i, n := range c.servers {
		out[i] = "nats://" + n.client.Addr()
	}
	return out
}

// URL is server i's client address.
func (c *Cluster) URL(i int) string { return "nats://" + c.servers[i].client.Addr() }

// Server is server i, nil while it is down.
func (c *Cluster) Server(i int) *server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.servers[i].srv
}

func (c *Cluster) serverOptions(i int) *server.Options {
	n := c.servers[i]
	var routes []*url.URL
	for j, p := range n.routes {
		if j != i {
			routes = append(routes, &url.URL{Scheme: "nats-route", Host: p.Addr()})
		}
	}
	o := &server.Options{
		ServerName: n.name,
		Host:       "127.0.0.1",
		Port:       -1,
		JetStream:  true,
		StoreDir:   n.dir,
		NoSigs:     true,
		NoLog:      c.opts.Log == nil,
		Cluster: server.ClusterOpts{
			Name: "plexus-test", Host: "127.0.0.1", Port: -1,
			Advertise: deadAdvertise, NoAdvertise: true,
		},
		Routes:     routes,
		MaxPayload: c.opts.MaxPayload,
		Username:   c.opts.User,
		Password:   c.opts.Password,
	}
	if len(c.servers) == 1 {
		// One server is no cluster: JetStream runs standalone.
		o.Cluster, o.Routes = server.ClusterOpts{}, nil
	}
	if c.opts.Configure != nil {
		c.opts.Configure(i, o)
	}
	return o
}

func (c *Cluster) startServer(i int) {
	c.t.Helper()
	srv, err := server.NewServer(c.serverOptions(i))
	if err != nil {
		c.t.Fatalf("server %d: %v", i, err)
	}
	if c.opts.Log != nil {
		srv.SetLoggerV2(&logger{name: c.servers[i].name, f: c.opts.Log}, false, false, false)
	}
	srv.Start()
	if !srv.ReadyForConnections(20 * time.Second) {
		srv.Shutdown()
		c.t.Fatalf("server %d did not start", i)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.servers[i]
	n.srv = srv
	n.client.target(srv.Addr().String())
	n.client.Heal()
	for _, m := range c.servers {
		if p := m.routes[i]; p != nil {
			p.target(srv.ClusterAddr().String())
			p.Heal()
		}
	}
	for _, p := range n.routes {
		if p != nil {
			p.Heal()
		}
	}
}

// Kill severs every connection of server i at once (clients and routes,
// with a reset) and then shuts it down: the others get no goodbye and no
// leadership hand-over, they notice missed heartbeats. Its store stays for
// Restart.
func (c *Cluster) Kill(i int) {
	c.mu.Lock()
	n := c.servers[i]
	srv := n.srv
	n.srv = nil
	n.client.Cut()
	for j, m := range c.servers {
		if j == i {
			for _, p := range m.routes {
				if p != nil {
					p.Cut()
				}
			}
			continue
		}
		m.routes[i].Cut()
	}
	c.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// Restart starts server i again on its store.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if c.Server(i) != nil {
		c.t.Fatalf("server %d is running", i)
	}
	c.startServer(i)
}

// StreamLeader is the index of the server leading stream (in the global
// account), or -1 when none does.
func (c *Cluster) StreamLeader(stream string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, n := range c.servers {
		if n.srv != nil && n.srv.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return i
		}
	}
	return -1
}

// MetaLeader is the index of the JetStream meta leader, or -1.
func (c *Cluster) MetaLeader() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, n := range c.servers {
		if n.srv != nil && n.srv.JetStreamIsLeader() {
			return i
		}
	}
	return -1
}

// WaitStreamLeader waits until stream has a leader and returns its index.
func (c *Cluster) WaitStreamLeader(stream string, within time.Duration) int {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		if i := c.StreamLeader(stream); i >= 0 {
			return i
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("stream %s has no leader after %s", stream, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitReady waits until there is a meta leader, every running server is
// current with it and answers JetStream requests.
func (c *Cluster) WaitReady(within time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	var last error
	for time.Now().Before(deadline) {
		if last = c.ready(); last == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("cluster not ready after %s: %v", within, last)
}

func (c *Cluster) ready() error {
	if len(c.servers) > 1 && c.MetaLeader() < 0 {
		return fmt.Errorf("no meta leader")
	}
	for i := range c.servers {
		srv := c.Server(i)
		if srv == nil {
			continue
		}
		if len(c.servers) > 1 && !srv.JetStreamIsCurrent() {
			return fmt.Errorf("server %d not current", i)
		}
		if err := c.ping(i); err != nil {
			return fmt.Errorf("server %d: %w", i, err)
		}
	}
	return nil
}

func (c *Cluster) ping(i int) error {
	nc, err := c.Connect(i)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err
}

// Connect opens a plain client connection to server i only (no
// reconnects), with the cluster's credentials.
func (c *Cluster) Connect(i int, opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{nats.NoReconnect(), nats.Timeout(2 * time.Second)}, opts...)
	if c.opts.User != "" {
		opts = append(opts, nats.UserInfo(c.opts.User, c.opts.Password))
	}
	opts = append(opts, c.opts.ClientOptions...)
	return nats.Connect(c.URL(i), opts...)
}

func (c *Cluster) stop() {
	var wg sync.WaitGroup
	c.mu.Lock()
	for _, n := range c.servers {
		if n.srv != nil {
			wg.Add(1)
			go func(s *server.Server) {
				defer wg.Done()
				s.Shutdown()
				s.WaitForShutdown()
			}(n.srv)
			n.srv = nil
		}
	}
	c.mu.Unlock()
	wg.Wait()
	for _, n := range c.servers {
		n.client.Close()
		for _, p := range n.routes {
			if p != nil {
				p.Close()
			}
		}
	}
}

type logger struct {
	name string
	f    func(string, ...any)
}

func (l *logger) Noticef(string, ...any) {}
func (l *logger) Warnf(format string, v ...any) {
	l.f("%s WARN "+format, append([]any{l.name}, v...)...)
}
func (l *logger) Fatalf(format string, v ...any) {
	l.f("%s FATAL "+format, append([]any{l.name}, v...)...)
}
func (l *logger) Errorf(format string, v ...any) {
	l.f("%s ERROR "+format, append([]any{l.name}, v...)...)
}
func (l *logger) Debugf(string, ...any) {}
func (l *logger) Tracef(string, ...any) {}
