package service

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/plexushq/plexus/client"
	"github.com/plexushq/plexus/registry"
)

// Config configures a service. Name is required; everything else has a
// default.
type Config struct {
	// Name of the service, as registered and as service.name in traces.
	Name string
	// ID of this instance. Default <name>-<hostname>-<pid>.
	ID string
	// Addr to listen on. Default ":8080".
	Addr string
	// AdvertiseURL is the URL other services use. Default http://<listen
	// address>, with 127.0.0.1 for an unspecified host.
	AdvertiseURL string
	// RegistryURL is a Plexus node's admin URL (PLEXUS_ADMIN_URL). Empty:
	// the service does not register (and traces go only where the
	// OTEL_EXPORTER_OTLP_* variables say).
	RegistryURL string
	// Token is the admin token (PLEXUS_ADMIN_TOKEN).
	Token string
	// Version, Zone, Tags, Metadata and Weight are registered with the instance.
	Version  string
	Zone     string
	Tags     []string
	Metadata map[string]string
	Weight   int
	// HealthPath is served with the liveness answer and used by the
	// registry's checks. Default "/health".
	HealthPath string
	// CheckInterval of the registry's active checks. Default 10s.
	CheckInterval time.Duration
	// TTL of the registration lease; heartbeats renew it every TTL/3.
	// Default 15s.
	TTL time.Duration
	// DrainDelay is how long the instance keeps serving after being marked
	// draining, so caches and gateways stop sending it traffic first.
	// Default 2s.
	DrainDelay time.Duration
	// DrainTimeout bounds the wait for in-flight requests. Default 30s.
	DrainTimeout time.Duration
	// TracerProvider for server spans. Nil: one is set up exporting to
	// RegistryURL's receiver (or OTEL_EXPORTER_OTLP_*), flushed at exit.
	TracerProvider trace.TracerProvider
	// SampleRatio for the provider set up here (0 means 1).
	SampleRatio float64
	// Metrics is the registry /metrics serves. Default: a new one with
	// the Go and process collectors.
	Metrics *prometheus.Registry
	// Client configures the service client returned by Service.Client.
	Client client.Config
	// Logger. Default: JSON lines on stderr.
	Logger *slog.Logger
	// OnReady, when set, is called with the advertised URL once the
	// instance serves (and is registered, when RegistryURL is set).
	OnReady func(url string)
}

func (c *Config) defaults() error {
	if err := registry.ValidateService(c.Name); err != nil {
		return fmt.Errorf("service: name: %w", err)
	}
	if c.ID == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "host"
		}
		c.ID = fmt.Sprintf("%s-%s-%d", c.Name, host, os.Getpid())
	}
	if c.Addr == "" {
		c.Addr = ":8080"
	}
	if c.RegistryURL == "" {
		c.RegistryURL = os.Getenv("PLEXUS_ADMIN_URL")
	}
	if c.Token == "" {
		c.Token = os.Getenv("PLEXUS_ADMIN_TOKEN")
	}
	if c.HealthPath == "" {
		c.HealthPath = "/health"
	}
	if c.HealthPath[0] != '/' || c.HealthPath == "/metrics" {
		return errors.New("service: HealthPath must start with / and not be /metrics")
	}
	if c.CheckInterval <= 0 {
		c.CheckInterval = 10 * time.Second
	}
	if c.TTL <= 0 {
		c.TTL = 15 * time.Second
	}
	if c.DrainDelay <= 0 {
		c.DrainDelay = 2 * time.Second
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("service", c.Name)
	}
	return nil
}
