package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/trace"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/internal/httpx"
	"github.com/plexushq/plexus/registry"
)

// component is a part of a node with one lifecycle. Start returns once the
// component serves; Stop finishes running work, bounded by ctx.
type component interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

type namedComponent struct {
	name string
	c    component
}

// Node is one Plexus process: the engine plus the roles it runs.
type Node struct {
	cfg     Config
	log     *slog.Logger
	token   string
	file    *FileConfig
	eng     *engine.Engine
	metrics *prometheus.Registry

	admin   *adminMux    // records its patterns (mux.go)
	gateway http.Handler // set by the gateway role

	comps     []namedComponent
	lock      *engine.DirLock         // the data dir's lock (embedded engine)
	bound     map[string]net.Listener // ports bound before the store is opened, by listener name
	listeners []*listener
	adminLn   *listener
	gatewayLn *listener
	slots     *httpx.Slots // caps the node's concurrent SSE streams
	health    map[string]func(context.Context) any
	ready     atomic.Bool
	started   time.Time
	reloadMu  sync.Mutex      // one reload at a time (reload.go)
	preparers []namedPreparer // the sections a reload prepares, in setup order
	conf      configState     // the generation in force
	stopOnce  sync.Once
	stopErr   error
	regCache  *registry.Cache // KV-fed registry cache, started first (setup_registry.go)

	tracer      trace.TracerProvider // set first by setup_telemetry.go; give it to every component
	traceChecks bool                 // telemetry.traceHealthChecks: give the checker the tracer
}

// New checks cfg and prepares a node; Start runs it.
func New(cfg Config) (*Node, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:    cfg,
		log:    cfg.Logger,
		admin:  newAdminMux(),
		health: map[string]func(context.Context) any{},
		bound:  map[string]net.Listener{},
		slots:  httpx.NewSlots(cfg.MaxStreams),
	}
	return n, nil
}

// Start starts the engine, the components of the configured roles and the
// listeners. Before it opens the store it takes the data dir's lock (an
// embedded engine) and binds its ports, so a second process on the same
// dir, or a start on a busy port, fails at once and touches nothing. On
// error everything started so far is stopped again.
func (n *Node) Start(ctx context.Context) (err error) {
	n.started = time.Now()
	defer func() {
		if err != nil {
			sctx, cancel := context.WithTimeout(context.Background(), n.cfg.ShutdownTimeout)
			defer cancel()
			_ = n.Stop(sctx)
		}
	}()
	if n.file, err = LoadFile(n.cfg.ConfigFile); err != nil {
		return err
	}
	if err = n.file.check(); err != nil {
		return err
	}
	if n.cfg.embedded() {
		if n.lock, err = engine.LockDataDir(n.cfg.DataDir); err != nil {
			return err
		}
	}
	if err = n.setupToken(); err != nil {
		return err
	}
	if err = n.bindPorts(); err != nil {
		return err
	}
	ecfg := n.cfg.engineConfig()
	ecfg.Lock = n.lock
	if n.eng, err = engine.Start(ctx, ecfg); err != nil {
		return err
	}
	n.lock = nil // the engine releases it now
	n.setupMetrics()
	n.setupConfigState()
	n.setupAdmin()
	if err = n.setupComponents(ctx); err != nil {
		return err
	}
	if n.cfg.ConfigFile != "" { // every role reloads: the node watches the file
		n.add("config-watch", &fileWatch{n: n, file: n.cfg.ConfigFile})
	}
	for i, nc := range n.comps {
		if err = nc.c.Start(ctx); err != nil {
			n.comps = n.comps[:i] // only stop what started
			return fmt.Errorf("start %s: %w", nc.name, err)
		}
	}
	if err = n.startListeners(); err != nil {
		return err
	}
	n.ready.Store(true)
	n.log.Info("plexus node started", "roles", n.cfg.Roles, "admin", n.AdminAddr(),
		"gateway", n.GatewayAddr(), "embedded", n.eng.Embedded(), "took", time.Since(n.started).Round(time.Millisecond))
	return nil
}

// add registers a component; components start in the order added and stop
// in reverse.
func (n *Node) add(name string, c component) {
	n.comps = append(n.comps, namedComponent{name, c})
}

// setupComponents builds the components of the configured roles. Each
// component's wiring lives in a setup_<component>.go file of this package.
func (n *Node) setupComponents(ctx context.Context) error {
	for _, setup := range []func(context.Context) error{
		// Components are appended here in start order.
		n.setupTelemetry,
		n.setupRegistry,
		n.setupGateway,
		n.setupEvents,
		n.setupQueue,
	} {
		if err := setup(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (n *Node) setupToken() error {
	if n.cfg.AdminToken != "" {
		if len(n.cfg.AdminToken) < 16 {
			return errors.New("admin token must be at least 16 characters")
		}
		n.token = n.cfg.AdminToken
		return nil
	}
	token, path, created, err := loadOrCreateToken(n.cfg.DataDir)
	if err != nil {
		return err
	}
	n.token = token
	if created {
		if n.cfg.PrintToken != nil {
			n.cfg.PrintToken(token, path)
		} else {
			n.log.Info("generated admin token; it is shown once", "token", token, "file", path)
		}
	}
	return nil
}

func (n *Node) setupMetrics() {
	n.metrics = prometheus.NewRegistry()
	n.metrics.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "plexus_build_info",
		Help:        "Always 1; labels name the version and the roles of this node.",
		ConstLabels: prometheus.Labels{"version": n.cfg.Version, "roles": strings.Join(n.cfg.Roles, ",")},
	})
	info.Set(1)
	n.metrics.MustRegister(info, nodeCollector{n})
}

// bindPorts binds the admin listener and, with the gateway role, the
// gateway listener, before the store is opened.
func (n *Node) bindPorts() error {
	addrs := [][2]string{{"admin", n.cfg.AdminAddr}}
	if n.cfg.has(RoleGateway) {
		addrs = append(addrs, [2]string{"gateway", n.cfg.GatewayAddr})
	}
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a[1])
		if err != nil {
			return fmt.Errorf("%s listener on %s: %w", a[0], a[1], err)
		}
		n.bound[a[0]] = ln
	}
	return nil
}

// adminWriteTimeout bounds writing one admin answer: the request's own
// deadline plus room for a large body to a slow reader. Streams and long
// polls move it on themselves.
func (n *Node) adminWriteTimeout() time.Duration {
	return n.cfg.RequestTimeout + 30*time.Second
}

func (n *Node) startListeners() error {
	lim := n.cfg.limits()
	ln := newListener("admin", n.take("admin"), httpx.WriteTimeout(n.adminWriteTimeout(), n.adminHandler()), nil, lim, n.log)
	if !ln.loopback() {
		n.log.Warn("the admin listener is reachable from other hosts and has no TLS: the admin token and every admin "+
			"call cross the network in clear text; bind it to 127.0.0.1 or put a TLS proxy in front", "addr", ln.Addr())
	}
	if n.cfg.AdminServer != GatewayServerNetHTTP {
		ln.useH1(lim)
	}
	n.adminLn = ln
	n.listeners = append(n.listeners, ln)
	if n.cfg.has(RoleGateway) {
		var tlsCfg *tls.Config
		if n.cfg.TLSCert != "" {
			cert, err := tls.LoadX509KeyPair(n.cfg.TLSCert, n.cfg.TLSKey)
			if err != nil {
				return fmt.Errorf("gateway TLS: %w", err)
			}
			tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
				NextProtos: []string{"h2", "http/1.1"}}
		}
		h := n.gateway
		if h == nil {
			h = http.NotFoundHandler()
		}
		gl := newListener("gateway", n.take("gateway"), h, tlsCfg, lim, n.log)
		if tlsCfg == nil && n.cfg.GatewayServer != GatewayServerNetHTTP {
			gl.useH1(lim)
		}
		n.gatewayLn = gl
		n.listeners = append(n.listeners, gl)
	}
	for _, l := range n.listeners {
		l.serve()
	}
	return nil
}

// take hands a bound port over to its listener.
func (n *Node) take(name string) net.Listener {
	ln := n.bound[name]
	delete(n.bound, name)
	return ln
}

// Stop drains the listeners, stops the components in reverse order and
// closes the engine, all bounded by ctx. It is safe to call more than once.
func (n *Node) Stop(ctx context.Context) error {
	n.stopOnce.Do(func() {
		n.ready.Store(false)
		for name, ln := range n.bound { // bound, never served (a failed start)
			_ = ln.Close()
			delete(n.bound, name)
		}
		lerrs := make([]error, len(n.listeners))
		var wg sync.WaitGroup
		for i, l := range n.listeners {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := l.shutdown(ctx); err != nil {
					lerrs[i] = fmt.Errorf("%s listener: %w", l.name, err)
				}
			}()
		}
		wg.Wait()
		errs := lerrs
		for i := len(n.comps) - 1; i >= 0; i-- {
			if err := n.comps[i].c.Stop(ctx); err != nil {
				errs = append(errs, fmt.Errorf("stop %s: %w", n.comps[i].name, err))
			}
		}
		if n.eng != nil {
			if err := n.eng.Stop(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		if err := n.lock.Release(); err != nil { // taken, engine never started
			errs = append(errs, err)
		}
		n.stopErr = errors.Join(errs...)
	})
	return n.stopErr
}

// Engine is the node's engine (nil before Start).
func (n *Node) Engine() *engine.Engine { return n.eng }

// Metrics is the node's Prometheus registry.
func (n *Node) Metrics() *prometheus.Registry { return n.metrics }

// Token is the admin token in force.
func (n *Node) Token() string { return n.token }

// AdminRoutes lists the patterns mounted on the admin listener, sorted,
// e.g. "GET /v1/queues"; docs/openapi.yaml must describe each of them.
func (n *Node) AdminRoutes() []string { return n.admin.Patterns() }

// AdminAddr is the bound admin address (useful with port 0).
func (n *Node) AdminAddr() string {
	if n.adminLn == nil {
		return ""
	}
	return n.adminLn.Addr()
}

// GatewayAddr is the bound gateway address, empty without the gateway role.
func (n *Node) GatewayAddr() string {
	if n.gatewayLn == nil {
		return ""
	}
	return n.gatewayLn.Addr()
}
