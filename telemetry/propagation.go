package telemetry

import (
	"context"
	"net/textproto"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
)

// Propagator is the composite W3C propagator every Plexus component uses:
// trace context (traceparent, tracestate) and baggage.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// HeaderCarrier adapts nats.Header to propagation.TextMapCarrier. Unlike
// propagation.HeaderCarrier it keeps keys exactly as written (NATS headers
// are case-sensitive), so "traceparent" stays lower case as W3C spells it.
type HeaderCarrier nats.Header

var _ propagation.TextMapCarrier = HeaderCarrier(nil)

// Get returns the first value of key, trying the exact key first and the
// canonical MIME form second (publishers that used http.Header rules).
func (c HeaderCarrier) Get(key string) string {
	if v := c[key]; len(v) > 0 {
		return v[0]
	}
	if v := c[textproto.CanonicalMIMEHeaderKey(key)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Set replaces key's values with value.
func (c HeaderCarrier) Set(key, value string) { c[key] = []string{value} }

// Keys lists the keys present.
func (c HeaderCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// InjectHeader writes ctx's trace context and baggage into h (which must
// not be nil) for a queue message or an event.
func InjectHeader(ctx context.Context, h nats.Header) {
	Propagator().Inject(ctx, HeaderCarrier(h))
}

// ExtractHeader returns ctx carrying the remote span context and baggage
// found in h; ctx is returned unchanged when h carries none.
func ExtractHeader(ctx context.Context, h nats.Header) context.Context {
	if h == nil {
		return ctx
	}
	return Propagator().Extract(ctx, HeaderCarrier(h))
}

// InjectMap writes ctx's trace context and baggage into m (which must not
// be nil), e.g. the headers map of a queue message in the HTTP API.
func InjectMap(ctx context.Context, m map[string]string) {
	Propagator().Inject(ctx, propagation.MapCarrier(m))
}

// ExtractMap returns ctx carrying the span context and baggage found in m.
func ExtractMap(ctx context.Context, m map[string]string) context.Context {
	if m == nil {
		return ctx
	}
	return Propagator().Extract(ctx, propagation.MapCarrier(m))
}
