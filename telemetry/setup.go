package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// Config configures Setup. The zero value plus ServiceName traces every
// request and exports nowhere unless the OTEL_EXPORTER_OTLP_* variables say so.
type Config struct {
	// ServiceName is the resource's service.name (OTEL_SERVICE_NAME wins).
	ServiceName string
	// ServiceVersion is the resource's service.version.
	ServiceVersion string
	// Attributes are added to the resource (e.g. deployment.environment).
	Attributes []attribute.KeyValue
	// Endpoint is the OTLP/HTTP base or traces URL used when neither
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT nor OTEL_EXPORTER_OTLP_ENDPOINT is
	// set, typically a Plexus node's admin URL ("http://127.0.0.1:3100"); a
	// URL without a path gets "/v1/traces". Empty: no exporter unless the
	// environment names one.
	Endpoint string
	// Headers are sent with every export to Endpoint (e.g. the admin
	// token as "Authorization: Bearer …"). OTEL_EXPORTER_OTLP_HEADERS
	// applies when the environment names the endpoint.
	Headers map[string]string
	// SampleRatio is the fraction of new traces sampled, parent-based (a
	// sampled parent is always followed). 0 means 1 (everything); negative
	// means none. OTEL_TRACES_SAMPLER, when set, wins.
	SampleRatio float64
	// Processors receive every ended sampled span in-process, e.g. the
	// node's own trace Store (Store.Processor) without an HTTP round trip.
	Processors []sdktrace.SpanProcessor
	// MetricReaders, when any, back the MeterProvider; none gives a no-op
	// meter (Plexus's own metrics go to Prometheus directly).
	MetricReaders []sdkmetric.Reader
	// SetGlobal installs the providers and Propagator as OpenTelemetry's
	// globals, for libraries that only use those.
	SetGlobal bool
}

// Provider holds the tracer and meter providers Setup built.
type Provider struct {
	tp       trace.TracerProvider
	mp       metric.MeterProvider
	sdk      *sdktrace.TracerProvider
	sdkm     *sdkmetric.MeterProvider
	exporter string
}

// TracerProvider is what components take in their configs.
func (p *Provider) TracerProvider() trace.TracerProvider { return p.tp }

// MeterProvider is the OpenTelemetry meter provider.
func (p *Provider) MeterProvider() metric.MeterProvider { return p.mp }

// Exporter describes where spans are exported ("" when nowhere).
func (p *Provider) Exporter() string { return p.exporter }

// ForceFlush exports everything buffered, bounded by ctx.
func (p *Provider) ForceFlush(ctx context.Context) error {
	if p.sdk == nil {
		return nil
	}
	return p.sdk.ForceFlush(ctx)
}

// Shutdown flushes and stops the providers, bounded by ctx.
func (p *Provider) Shutdown(ctx context.Context) error {
	var errs []error
	if p.sdk != nil {
		errs = append(errs, p.sdk.Shutdown(ctx))
	}
	if p.sdkm != nil {
		errs = append(errs, p.sdkm.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// Setup builds the tracer and meter providers of one process.
// OTEL_SDK_DISABLED=true gives no-op providers; OTEL_TRACES_EXPORTER=none
// disables the exporter but keeps cfg.Processors.
func Setup(ctx context.Context, cfg Config) (*Provider, error) {
	if strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") {
		return &Provider{tp: tracenoop.NewTracerProvider(), mp: metricnoop.NewMeterProvider()}, nil
	}
	res, err := buildResource(ctx, cfg)
	if err != nil {
		return nil, err
	}
	p := &Provider{}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if os.Getenv("OTEL_TRACES_SAMPLER") == "" {
		opts = append(opts, sdktrace.WithSampler(Sampler(cfg.SampleRatio)))
	}
	exp, where, err := newExporter(cfg)
	if err != nil {
		return nil, err
	}
	if exp != nil {
		p.exporter = where
		opts = append(opts, sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(2*time.Second)))
	}
	for _, sp := range cfg.Processors {
		opts = append(opts, sdktrace.WithSpanProcessor(sp))
	}
	if exp == nil && len(cfg.Processors) == 0 {
		// Spans would go nowhere: a no-op provider costs nothing per request
		// yet still propagates the caller's trace context.
		p.tp = tracenoop.NewTracerProvider()
	} else {
		p.sdk = sdktrace.NewTracerProvider(opts...)
		p.tp = p.sdk
	}
	if len(cfg.MetricReaders) > 0 {
		mopts := []sdkmetric.Option{sdkmetric.WithResource(res)}
		for _, r := range cfg.MetricReaders {
			mopts = append(mopts, sdkmetric.WithReader(r))
		}
		p.sdkm = sdkmetric.NewMeterProvider(mopts...)
		p.mp = p.sdkm
	} else {
		p.mp = metricnoop.NewMeterProvider()
	}
	if cfg.SetGlobal {
		otel.SetTracerProvider(p.tp)
		otel.SetMeterProvider(p.mp)
		otel.SetTextMapPropagator(Propagator())
	}
	return p, nil
}

// DefaultSampleRatio is the share of new traces a Plexus node samples when
// its configuration does not say: parent-based, so a request arriving with
// a sampled traceparent is always followed, and one new trace in ten is
// started. Recording every request costs the gateway 20–30% of its CPU
// (bench/gateway -tracing measures it); a tenth of that buys a steady
// stream of representative traces. Set 1 while developing.
const DefaultSampleRatio = 0.1

// Sampler is the parent-based ratio sampler Setup uses: ratio 0 means 1.
func Sampler(ratio float64) sdktrace.Sampler {
	switch {
	case ratio == 0 || ratio >= 1:
		return sdktrace.ParentBased(sdktrace.AlwaysSample())
	case ratio < 0:
		return sdktrace.ParentBased(sdktrace.NeverSample())
	default:
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))
	}
}

func buildResource(ctx context.Context, cfg Config) (*resource.Resource, error) {
	attrs := append([]attribute.KeyValue{}, cfg.Attributes...)
	if cfg.ServiceName != "" {
		attrs = append(attrs, semconv.ServiceName(cfg.ServiceName))
	}
	if cfg.ServiceVersion != "" {
		attrs = append(attrs, semconv.ServiceVersion(cfg.ServiceVersion))
	}
	// Later detectors win: the environment overrides the code's defaults.
	res, err := resource.New(ctx, resource.WithTelemetrySDK(),
		resource.WithAttributes(attrs...), resource.WithFromEnv())
	if err != nil && res == nil {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}
	return res, nil
}

// envEndpoint reports whether the environment names an OTLP endpoint.
func envEndpoint() bool {
	return os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != ""
}

// newExporter honours the environment first (the exporter reads every
// OTEL_EXPORTER_OTLP_* variable itself when given no options that override
// them), then cfg.Endpoint.
func newExporter(cfg Config) (sdktrace.SpanExporter, string, error) {
	if strings.EqualFold(os.Getenv("OTEL_TRACES_EXPORTER"), "none") {
		return nil, "", nil
	}
	if envEndpoint() {
		where := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
		if where == "" {
			where = os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
		}
		exp, err := otlptracehttp.New(context.Background())
		return exp, where, wrapExporterErr(err)
	}
	if cfg.Endpoint == "" {
		return nil, "", nil
	}
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, "", fmt.Errorf("telemetry endpoint %q: want an http(s) URL", cfg.Endpoint)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(u.String())}
	if len(cfg.Headers) > 0 {
		opts = append(opts, otlptracehttp.WithHeaders(cfg.Headers))
	}
	exp, err := otlptracehttp.New(context.Background(), opts...)
	return exp, u.String(), wrapExporterErr(err)
}

func wrapExporterErr(err error) error {
	if err != nil {
		return fmt.Errorf("telemetry OTLP exporter: %w", err)
	}
	return nil
}
