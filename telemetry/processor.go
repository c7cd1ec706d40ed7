package telemetry

import (
	"context"
	"sync/atomic"

	"go.opentelemetry.io/otel/sdk/resource"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Processor returns a span processor that puts every sampled span ended in
// this process straight into the store. A node uses it for its own spans
// instead of exporting them over HTTP to its own receiver: no serialization,
// no loopback connection, nothing lost in a batch at shutdown, and no risk of
// the export requests themselves being traced into an endless loop.
func (s *Store) Processor() sdktrace.SpanProcessor { return &storeProcessor{s: s} }

type storeProcessor struct {
	s   *Store
	res atomic.Pointer[convertedResource] // the last resource seen, converted once
}

// convertedResource is a resource's attributes as the store keeps them.
type convertedResource struct {
	src   *resource.Resource
	attrs map[string]any
}

func (p *storeProcessor) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

func (p *storeProcessor) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	p.s.Add(spanFromSDK(s, p.resource(s.Resource())))
}

// resource converts r's attributes, reusing the previous conversion while
// spans come from the same provider (a process usually has one).
func (p *storeProcessor) resource(r *resource.Resource) map[string]any {
	if c := p.res.Load(); c != nil && c.src == r {
		return c.attrs
	}
	var attrs map[string]any
	if r != nil {
		attrs = sdkAttrs(r.Attributes())
	}
	p.res.Store(&convertedResource{src: r, attrs: attrs})
	return attrs
}

func (p *storeProcessor) Shutdown(context.Context) error   { return nil }
func (p *storeProcessor) ForceFlush(context.Context) error { return nil }
