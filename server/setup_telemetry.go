package server

import (
	"context"
	"fmt"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/plexushq/plexus/telemetry"
)

// telemetrySection is the `telemetry:` section of the configuration file.
type telemetrySection struct {
	// SampleRatio of new traces, parent-based; 0 means 1 (everything).
	SampleRatio float64 `yaml:"sampleRatio"`
	// MaxTraces, MaxBytes and MaxSpansPerTrace bound the trace store of a
	// control node (defaults 10000, 64 MiB, 2000).
	MaxTraces        int   `yaml:"maxTraces"`
	MaxBytes         int64 `yaml:"maxBytes"`
	MaxSpansPerTrace int   `yaml:"maxSpansPerTrace"`
	// MaxBodyBytes bounds one OTLP export body (default 8 MiB).
	MaxBodyBytes int64 `yaml:"maxBodyBytes"`
}

// telemetryComponent flushes and stops the tracer provider on shutdown.
type telemetryComponent struct{ p *telemetry.Provider }

func (c telemetryComponent) Start(context.Context) error    { return nil }
func (c telemetryComponent) Stop(ctx context.Context) error { return c.p.Shutdown(ctx) }

// setupTelemetry builds the node's tracer provider (n.tracer), used by every
// other component, so it must run first. On the control role it also keeps
// the trace store and serves POST /v1/traces, GET /v1/traces and GET
// /v1/traces/{traceId}. The node's own spans go into its store through an
// in-process span processor rather than through its own HTTP receiver: no
// serialization and loopback round trip per batch, nothing lost in an
// exporter queue at shutdown, and no export request that could itself be
// traced. OTEL_EXPORTER_OTLP_* variables additionally export everything to
// an external collector.
func (n *Node) setupTelemetry(ctx context.Context) error {
	var sec telemetrySection
	if err := DecodeSection(&n.file.Telemetry, &sec); err != nil {
		return fmt.Errorf("config telemetry: %w", err)
	}
	if sec.SampleRatio > 1 {
		return fmt.Errorf("config telemetry: sampleRatio %v: want 0 to 1", sec.SampleRatio)
	}
	cfg := telemetry.Config{ServiceName: "plexus", ServiceVersion: n.cfg.Version, SampleRatio: sec.SampleRatio}
	if n.cfg.has(RoleControl) {
		store := telemetry.NewStore(telemetry.StoreConfig{MaxTraces: sec.MaxTraces, MaxBytes: sec.MaxBytes,
			MaxSpansPerTrace: sec.MaxSpansPerTrace})
		if err := store.RegisterMetrics(n.metrics); err != nil {
			return fmt.Errorf("telemetry metrics: %w", err)
		}
		telemetry.NewAPI(store, telemetry.APIConfig{MaxBodyBytes: sec.MaxBodyBytes, Logger: n.log, Metrics: n.metrics}).Register(n.handleAdmin)
		n.addHealth("traces", func(context.Context) any { return store.Stats() })
		cfg.Processors = []sdktrace.SpanProcessor{store.Processor()}
	}
	p, err := telemetry.Setup(ctx, cfg)
	if err != nil {
		return err
	}
	n.tracer = p.TracerProvider()
	if p.Exporter() != "" {
		n.log.Info("exporting traces", "endpoint", p.Exporter())
	}
	n.add("telemetry", telemetryComponent{p})
	return nil
}
