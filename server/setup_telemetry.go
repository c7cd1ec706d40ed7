package server

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/plexushq/plexus/telemetry"
)

// telemetrySection is the `telemetry:` section of the configuration file.
type telemetrySection struct {
	// SampleRatio of new traces (0 to 1), parent-based: a request that
	// arrives with a sampled traceparent is always traced. Unset:
	// telemetry.DefaultSampleRatio; 0: no new traces.
	SampleRatio *float64 `yaml:"sampleRatio"`
	// TraceHealthChecks records a span per active health check. Off by
	// default: checks of a few instances would otherwise be most of the
	// trace store and push user traffic out of it.
	TraceHealthChecks bool `yaml:"traceHealthChecks"`
	// MaxTraces, MaxBytes and MaxSpansPerTrace bound the trace store of a
	// control node (defaults 10000, 64 MiB, 2000).
	MaxTraces        int   `yaml:"maxTraces"`
	MaxBytes         int64 `yaml:"maxBytes"`
	MaxSpansPerTrace int   `yaml:"maxSpansPerTrace"`
	// MaxBodyBytes bounds one OTLP export body (default 8 MiB).
	MaxBodyBytes int64 `yaml:"maxBodyBytes"`
	// HistoryInterval and HistorySamples size the in-memory metrics
	// history behind the dashboard's charts (defaults 5s and 360: 30 minutes).
	HistoryInterval time.Duration `yaml:"historyInterval"`
	HistorySamples  int           `yaml:"historySamples"`
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
	sec, err := telemetrySectionOf(n.file)
	if err != nil {
		return err
	}
	ratio := telemetry.DefaultSampleRatio
	if sec.SampleRatio != nil {
		ratio = *sec.SampleRatio
		if ratio == 0 {
			ratio = -1 // telemetry.Config: negative means none
		}
	}
	n.traceChecks = sec.TraceHealthChecks
	cfg := telemetry.Config{ServiceName: "plexus", ServiceVersion: n.cfg.Version, SampleRatio: ratio,
		Attributes: nodeResource(n)}
	var store *telemetry.Store // the control role's
	if n.cfg.has(RoleControl) {
		store = telemetry.NewStore(telemetry.StoreConfig{MaxTraces: sec.MaxTraces, MaxBytes: sec.MaxBytes,
			MaxSpansPerTrace: sec.MaxSpansPerTrace})
		if err := store.RegisterMetrics(n.metrics); err != nil {
			return fmt.Errorf("telemetry metrics: %w", err)
		}
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
	// The telemetry: section is built into the tracer provider and the
	// stores at start: a reload checks it, and says when a change waits
	// for a restart.
	n.onReload("telemetry", func(fc *FileConfig) (change, error) {
		next, err := telemetrySectionOf(fc)
		if err != nil {
			return change{}, err
		}
		return change{apply: func(context.Context) error {
			if !reflect.DeepEqual(next, sec) {
				n.log.Warn("configuration: the telemetry: section changed; it takes effect at the next restart")
			}
			return nil
		}}, nil
	})
	// Every node keeps a short history of its own metrics for the
	// dashboard's charts (GET /v1/metrics/history, token required).
	hist := telemetry.NewHistory(n.metrics, telemetry.HistoryConfig{Logger: n.log,
		Interval: sec.HistoryInterval, Samples: sec.HistorySamples})
	n.add("metrics-history", hist)
	telemetry.NewAPI(store, telemetry.APIConfig{MaxBodyBytes: sec.MaxBodyBytes, Logger: n.log, Metrics: n.metrics,
		History: hist}).Mount(n.handleAdmin)
	return nil
}

// telemetrySectionOf decodes and checks fc's telemetry: section.
func telemetrySectionOf(fc *FileConfig) (telemetrySection, error) {
	var sec telemetrySection
	if err := DecodeSection(&fc.Telemetry, &sec); err != nil {
		return sec, fmt.Errorf("config telemetry: %w", err)
	}
	if r := sec.SampleRatio; r != nil && (*r < 0 || *r > 1) {
		return sec, fmt.Errorf("config telemetry: sampleRatio %v: want 0 to 1", *r)
	}
	if d := sec.HistoryInterval; d != 0 && d < 100*time.Millisecond {
		return sec, fmt.Errorf("config telemetry: historyInterval %s: want at least 100ms", d)
	}
	return sec, nil
}

// nodeResource names this node in its spans' resource, beside service.name
// and service.version: the host, the roles, and an instance id that tells
// two nodes on one host apart. OTEL_RESOURCE_ATTRIBUTES (e.g.
// deployment.environment.name=prod) adds to or overrides these.
func nodeResource(n *Node) []attribute.KeyValue {
	host, _ := os.Hostname()
	id := host
	if n.cfg.AdminAddr != "" {
		id = host + "/" + n.cfg.AdminAddr
	}
	return []attribute.KeyValue{
		attribute.String("host.name", host),
		attribute.String("service.instance.id", id),
		attribute.String("plexus.node.roles", strings.Join(n.cfg.Roles, ",")),
	}
}
