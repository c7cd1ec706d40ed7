package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/attribute"

	"github.com/plexushq/plexus/client"
	"github.com/plexushq/plexus/registry"
	"github.com/plexushq/plexus/retry"
	"github.com/plexushq/plexus/telemetry"
)

// Service is one running instance. Build it with New when the handler needs
// the service client or tracer before Run; otherwise call the package-level Run.
type Service struct {
	cfg      Config
	tel      *telemetry.Provider // set up here (nil when the caller gave a provider)
	reg      *registry.Client    // nil without RegistryURL
	cache    *registry.Cache
	client   *client.Client
	draining atomic.Bool
	ran      atomic.Bool
	metrics  *serverMetrics
}

// Run is New followed by Service.Run.
func Run(ctx context.Context, cfg Config, h http.Handler) error {
	s, err := New(ctx, cfg)
	if err != nil {
		return err
	}
	return s.Run(ctx, h)
}

// New checks cfg and prepares the tracer, metrics, registry client and
// service client. Resources are released by Run; call Run exactly once.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg}
	if s.cfg.Metrics == nil {
		s.cfg.Metrics = prometheus.NewRegistry()
		s.cfg.Metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	m, err := newServerMetrics(s.cfg.Metrics)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	if s.cfg.RegistryURL != "" {
		if s.reg, err = registry.NewClient(s.cfg.RegistryURL, s.cfg.Token, registry.ClientConfig{}); err != nil {
			return nil, err
		}
		s.cache = registry.NewHTTPCache(s.reg, registry.CacheConfig{Logger: s.cfg.Logger})
	}
	if s.cfg.TracerProvider == nil {
		tcfg := telemetry.Config{ServiceName: s.cfg.Name, ServiceVersion: s.cfg.Version, SampleRatio: s.cfg.SampleRatio,
			Attributes: []attribute.KeyValue{attribute.String("service.instance.id", s.cfg.ID)}}
		if s.cfg.RegistryURL != "" {
			tcfg.Endpoint = s.cfg.RegistryURL
			tcfg.Headers = map[string]string{"Authorization": "Bearer " + s.cfg.Token}
		}
		if s.tel, err = telemetry.Setup(ctx, tcfg); err != nil {
			return nil, err
		}
		s.cfg.TracerProvider = s.tel.TracerProvider()
	}
	if s.cache != nil {
		if err := s.newClient(); err != nil {
			s.release()
			return nil, err
		}
	}
	return s, nil
}

// Client returns the service client for calling other services, discovering
// them through the registry's watch feed (nil without RegistryURL). It is
// usable while Run runs.
func (s *Service) Client() *client.Client { return s.client }

// newClient builds the service client on the registry cache.
func (s *Service) newClient() error {
	cc := s.cfg.Client
	if cc.TracerProvider == nil {
		cc.TracerProvider = s.cfg.TracerProvider
	}
	if cc.Metrics == nil {
		cc.Metrics = s.cfg.Metrics
	}
	if cc.Logger == nil {
		cc.Logger = s.cfg.Logger
	}
	c, err := client.New(s.cache, cc)
	if err != nil {
		return fmt.Errorf("service %s: client: %w", s.cfg.Name, err)
	}
	s.client = c
	return nil
}

// Config returns the configuration in force, defaults filled in.
func (s *Service) Config() Config { return s.cfg }

// Draining reports whether the instance is shutting down.
func (s *Service) Draining() bool { return s.draining.Load() }

// Run serves h until ctx ends or SIGINT/SIGTERM arrives, then drains: it
// marks the instance draining (health answers 503, the registry stops
// routing to it), keeps serving for DrainDelay, stops accepting, waits up
// to DrainTimeout for in-flight requests, deregisters and flushes traces.
func (s *Service) Run(ctx context.Context, h http.Handler) (err error) {
	if !s.ran.CompareAndSwap(false, true) {
		return errors.New("service: Run called twice")
	}
	defer s.release()
	sctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("service %s: listen: %w", s.cfg.Name, err)
	}
	if s.cfg.AdvertiseURL == "" {
		s.cfg.AdvertiseURL = advertise(ln.Addr().(*net.TCPAddr))
	}
	srv := &http.Server{Handler: s.handler(h), ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) }}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	var wg sync.WaitGroup
	defer wg.Wait()
	hbCtx, stopHB := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHB()
	if err := s.start(sctx, &wg, hbCtx); err != nil {
		_ = srv.Close()
		<-serveErr
		return err
	}
	s.cfg.Logger.Info("service started", "id", s.cfg.ID, "url", s.cfg.AdvertiseURL, "registry", s.cfg.RegistryURL)
	if s.cfg.OnReady != nil {
		s.cfg.OnReady(s.cfg.AdvertiseURL)
	}
	select {
	case <-sctx.Done():
	case err := <-serveErr:
		stopHB()
		return fmt.Errorf("service %s: serve: %w", s.cfg.Name, err)
	}
	return s.drain(srv, serveErr, stopHB)
}

// start registers the instance, starts the heartbeat and the client's cache.
func (s *Service) start(ctx context.Context, wg *sync.WaitGroup, hbCtx context.Context) error {
	if s.reg == nil {
		return nil
	}
	if err := s.register(ctx); err != nil {
		return fmt.Errorf("service %s: register with %s: %w", s.cfg.Name, s.cfg.RegistryURL, err)
	}
	wg.Go(func() { s.heartbeat(hbCtx) })
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.cache.Start(cctx); err != nil {
		return fmt.Errorf("service %s: registry cache: %w", s.cfg.Name, err)
	}
	return nil
}

// drain is the graceful shutdown sequence.
func (s *Service) drain(srv *http.Server, serveErr chan error, stopHB context.CancelFunc) error {
	s.draining.Store(true)
	s.cfg.Logger.Info("service draining", "id", s.cfg.ID, "delay", s.cfg.DrainDelay)
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout+s.cfg.DrainDelay+10*time.Second)
	defer cancel()
	var errs []error
	if s.reg != nil {
		if _, err := s.reg.SetStatus(ctx, s.cfg.Name, s.cfg.ID, registry.StatusDraining); err != nil {
			s.cfg.Logger.Warn("could not mark the instance draining", "err", err)
		}
	}
	_ = retry.Sleep(ctx, s.cfg.DrainDelay)
	sdCtx, sdCancel := context.WithTimeout(ctx, s.cfg.DrainTimeout)
	defer sdCancel()
	if err := srv.Shutdown(sdCtx); err != nil {
		errs = append(errs, fmt.Errorf("waiting for in-flight requests: %w", err))
		_ = srv.Close()
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, err)
	}
	stopHB()
	if s.reg != nil {
		if err := s.reg.Deregister(ctx, s.cfg.Name, s.cfg.ID); err != nil && !errors.Is(err, registry.ErrNotFound) {
			errs = append(errs, fmt.Errorf("deregister: %w", err))
		}
	}
	s.cfg.Logger.Info("service stopped", "id", s.cfg.ID, "err", errors.Join(errs...))
	return errors.Join(errs...)
}

// release stops what New and Run started: cache, client connections, tracer.
func (s *Service) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if s.cache != nil {
		_ = s.cache.Stop(ctx)
	}
	if s.client != nil {
		s.client.CloseIdleConnections()
	}
	if s.reg != nil {
		s.reg.Close()
	}
	if s.tel != nil {
		if err := s.tel.Shutdown(ctx); err != nil {
			s.cfg.Logger.Warn("flushing traces", "err", err)
		}
	}
}

func (s *Service) registration() registry.Registration {
	r := registry.Registration{URL: s.cfg.AdvertiseURL, Version: s.cfg.Version, Zone: s.cfg.Zone,
		Tags: s.cfg.Tags, Metadata: s.cfg.Metadata, TTL: s.cfg.TTL,
		Check: &registry.Check{Path: s.cfg.HealthPath, Interval: s.cfg.CheckInterval}}
	if s.cfg.Weight > 0 {
		w := s.cfg.Weight
		r.Weight = &w
	}
	return r
}

func (s *Service) register(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, _, err := s.reg.Register(rctx, s.cfg.Name, s.cfg.ID, s.registration())
	return err
}

// heartbeat renews the lease every TTL/3 and re-registers when the
// registry forgot the instance (lease expired during a partition).
func (s *Service) heartbeat(ctx context.Context) {
	t := time.NewTicker(s.cfg.TTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if s.draining.Load() {
			continue
		}
		hctx, cancel := context.WithTimeout(ctx, s.cfg.TTL/3)
		_, err := s.reg.Heartbeat(hctx, s.cfg.Name, s.cfg.ID)
		cancel()
		if errors.Is(err, registry.ErrNotFound) {
			s.cfg.Logger.Warn("registry forgot this instance; registering again", "id", s.cfg.ID)
			err = s.register(ctx)
		}
		if err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("heartbeat failed", "id", s.cfg.ID, "err", err)
		}
	}
}

func advertise(a *net.TCPAddr) string {
	ip := a.IP
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return "http://" + net.JoinHostPort(ip.String(), fmt.Sprint(a.Port))
}
