// Package gateway owns Plexus's public HTTP entry point: a streaming reverse
// proxy that routes /api/{service}/… and configured routes to registry
// instances with load balancing, retries within a budget, circuit breakers,
// passive ejection, rate limits, CORS, body limits, an access log and
// metrics, and applies configuration changes atomically while serving.
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/plexushq/plexus/clock"
	"github.com/plexushq/plexus/internal/httpguard"
	"github.com/plexushq/plexus/registry"
)

// Discovery is what the gateway needs from the registry: lock-free reads of
// the locally cached services. registry.Cache satisfies it.
type Discovery interface {
	// Service returns the snapshot of one service, nil when unknown.
	Service(name string) *registry.ServiceSnapshot
	// Services returns every service, sorted by name.
	Services() []*registry.ServiceSnapshot
}

// The node's watch-fed registry cache is the gateway's discovery.
var _ Discovery = (*registry.Cache)(nil)

// Options are the gateway's collaborators; only Discovery is required.
type Options struct {
	// Discovery finds the instances of services. Required.
	Discovery Discovery
	// Logger for operational messages. Default slog.Default().
	Logger *slog.Logger
	// Metrics registers the gateway's collectors. Nil: no metrics.
	Metrics prometheus.Registerer
	// Clock for breakers, ejection, retry budgets and rate limits, so
	// tests can move time by hand. Default: the wall clock.
	Clock clock.Clock
	// AccessLog, when set, receives the JSON access log lines regardless of
	// the configuration's accessLog key.
	AccessLog io.Writer
	// UpstreamTLS is cloned for connections to https instances (a private
	// CA, client certificates). Nil: the system roots.
	UpstreamTLS *tls.Config
	// TracerProvider records a server span per proxied request, the parent
	// of the upstream's spans. Nil: no spans; traceparent is still
	// propagated, or created when the client sent none.
	TracerProvider trace.TracerProvider
	// BodyIdleTimeout is the longest wait for the next bytes of a request
	// body: a client slower than that gets 408 and its connection closed,
	// and nothing is charged to the upstream. Default 60s (nginx's
	// client_body_timeout).
	BodyIdleTimeout time.Duration
	// SendIdleTimeout is the longest wait for a client to take the next
	// bytes of an answer; then its connection is closed. Default 60s
	// (nginx's send_timeout).
	SendIdleTimeout time.Duration
}

// Gateway is an http.Handler serving the gateway listener.
type Gateway struct {
	opts     Options
	tracer   trace.Tracer // nil: no spans
	log      *slog.Logger
	clock    clock.Clock
	disc     Discovery
	cfg      atomic.Pointer[compiled]
	services sync.Map // name → *service
	metrics  *metrics
	logs     *accessFiles
	upgrades upgrades
	bodyIdle time.Duration
	sendIdle time.Duration

	reloadMu sync.Mutex
	stop     chan struct{}
	done     chan struct{}
	started  atomic.Bool
}

// New builds a gateway from a configuration; an invalid one is an error
// wrapping ErrInvalidConfig.
func New(cfg Config, opts Options) (*Gateway, error) {
	if opts.Discovery == nil {
		return nil, errors.New("gateway: Options.Discovery is required")
	}
	g := &Gateway{opts: opts, log: opts.Logger, clock: opts.Clock, disc: opts.Discovery,
		stop: make(chan struct{}), done: make(chan struct{})}
	if g.log == nil {
		g.log = slog.Default()
	}
	g.clock = clock.Or(g.clock)
	lim := httpguard.Limits{BodyIdleTimeout: opts.BodyIdleTimeout, SendIdleTimeout: opts.SendIdleTimeout}.WithDefaults()
	g.bodyIdle, g.sendIdle = lim.BodyIdleTimeout, lim.SendIdleTimeout
	if opts.TracerProvider != nil {
		g.tracer = opts.TracerProvider.Tracer("github.com/plexushq/plexus/gateway")
	}
	g.logs = newAccessFiles()
	var err error
	if g.metrics, err = newMetrics(opts.Metrics, g); err != nil {
		return nil, err
	}
	c, err := g.compile(cfg, nil)
	if err != nil {
		return nil, err
	}
	g.cfg.Store(c)
	return g, nil
}

// Apply validates cfg and, when valid, makes it the configuration for every
// request that starts from now on (Prepare, then Commit). Requests in
// flight and open WebSockets keep going. Access log files are reopened
// (log rotation: move the file, then SIGHUP). An invalid cfg changes
// nothing.
func (g *Gateway) Apply(cfg Config) error {
	p, err := g.Prepare(cfg)
	if err != nil {
		return err
	}
	p.Commit()
	return nil
}

// Prepared is a configuration built and checked, not yet in force: a node
// prepares every section of a changed file before it commits any, so a
// file that is invalid anywhere changes nothing. Commit it or Discard it;
// it holds the gateway's reload lock until then.
type Prepared struct {
	g          *Gateway
	prev, next *compiled
}

// Prepare builds cfg for Commit; an invalid cfg is an error (counted as a
// rejected reload) and changes nothing.
func (g *Gateway) Prepare(cfg Config) (*Prepared, error) {
	g.reloadMu.Lock()
	prev := g.cfg.Load()
	c, err := g.compile(cfg, prev)
	if err != nil {
		g.reloadMu.Unlock()
		g.metrics.reloads.WithLabelValues("rejected").Inc()
		return nil, err
	}
	return &Prepared{g: g, prev: prev, next: c}, nil
}

// Commit makes the prepared configuration the one in force.
func (p *Prepared) Commit() {
	g := p.g
	defer g.reloadMu.Unlock()
	g.cfg.Store(p.next)
	if p.prev.transport != p.next.transport {
		p.prev.transport.CloseIdle()
	}
	g.logs.reopen(func(path string, err error) {
		g.log.Error("gateway: reopening the access log failed; still writing to the old file", "file", path, "err", err)
	})
	g.metrics.reloads.WithLabelValues("applied").Inc()
}

// Discard drops the prepared configuration (counted as a rejected
// reload); the one in force stays.
func (p *Prepared) Discard() {
	defer p.g.reloadMu.Unlock()
	p.g.metrics.reloads.WithLabelValues("rejected").Inc()
	if p.next.transport != p.prev.transport {
		p.next.transport.CloseIdle()
	}
}

// Reload decodes a configuration with decode (strict decoding of the
// file's gateway section) and applies it; a decoding or validation error
// is returned, counted as rejected, and changes nothing.
func (g *Gateway) Reload(decode func(*Config) error) error {
	var cfg Config
	if err := decode(&cfg); err != nil {
		g.metrics.reloads.WithLabelValues("rejected").Inc()
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return g.Apply(cfg)
}

// Config returns the configuration in force.
func (g *Gateway) Config() Config { return g.cfg.Load().src }

// Start runs the access log flusher; the handler serves without it, but
// file access logs are then flushed only at Stop.
func (g *Gateway) Start(ctx context.Context) error {
	if g.started.Swap(true) {
		return nil
	}
	go g.background()
	return nil
}

func (g *Gateway) background() {
	defer close(g.done)
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	prune := 0
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
			g.logs.flush()
			if prune++; prune%120 == 0 {
				g.pruneServices()
				g.cfg.Load().transport.Sweep()
			}
		}
	}
}

// pruneServices forgets the state of services the registry no longer has.
func (g *Gateway) pruneServices() {
	g.services.Range(func(k, _ any) bool {
		if g.disc.Service(k.(string)) == nil {
			g.services.Delete(k)
		}
		return true
	})
}

// Stop ends WebSocket tunnels, stops the flusher and closes access log files.
func (g *Gateway) Stop(ctx context.Context) error {
	select {
	case <-g.stop:
		return nil
	default:
	}
	close(g.stop)
	g.upgrades.closeAll()
	if g.started.Load() {
		select {
		case <-g.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := g.upgrades.wait(ctx); err != nil {
		return err
	}
	g.cfg.Load().transport.CloseIdle()
	return g.logs.close()
}
