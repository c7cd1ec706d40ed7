package telemetry

import (
	"context"
	"net/http"
	"net/textproto"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Trace propagation has one home: every Plexus component carries W3C trace
// context and baggage through the helpers below, in HTTP headers (gateway,
// service client, registry client and checker, services) and in NATS
// message headers (queue messages, events).

// propagator is built once: W3C trace context (traceparent, tracestate)
// and baggage.
var propagator propagation.TextMapPropagator = propagation.NewCompositeTextMapPropagator(
	propagation.TraceContext{}, propagation.Baggage{})

// Propagator is the propagator every Plexus component uses (also
// installed as OpenTelemetry's global one by Setup).
func Propagator() propagation.TextMapPropagator { return propagator }

// InjectHTTP writes ctx's trace context and baggage into the headers of an
// outgoing request.
func InjectHTTP(ctx context.Context, h http.Header) {
	propagator.Inject(ctx, propagation.HeaderCarrier(h))
}

// ExtractHTTP returns ctx carrying the remote span context and baggage of
// an incoming request's headers.
func ExtractHTTP(ctx context.Context, h http.Header) context.Context {
	return propagator.Extract(ctx, propagation.HeaderCarrier(h))
}

// InjectHeader writes ctx's trace context and baggage into h (which must
// not be nil), the headers of a queue message or an event. A ctx with
// neither writes nothing.
func InjectHeader(ctx context.Context, h nats.Header) {
	if !trace.SpanContextFromContext(ctx).IsValid() && baggage.FromContext(ctx).Len() == 0 {
		return
	}
	propagator.Inject(ctx, natsCarrier(h))
}

// ExtractHeader returns ctx carrying the remote span context and baggage
// found in h; ctx is returned unchanged when h carries neither.
func ExtractHeader(ctx context.Context, h nats.Header) context.Context {
	c := natsCarrier(h)
	if c.Get("traceparent") == "" && c.Get("baggage") == "" {
		return ctx
	}
	return propagator.Extract(ctx, c)
}

// Trace is a trace context and baggage as their three W3C fields, for a
// carrier that keeps them as fields of its own (the event store frames
// them in an append's payload).
type Trace struct{ Parent, State, Baggage string }

// TraceOf is ctx's trace context and baggage; empty when ctx has no valid
// span context.
func TraceOf(ctx context.Context) Trace {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return Trace{}
	}
	var t Trace
	propagator.Inject(ctx, traceCarrier{&t})
	return t
}

// WithTrace returns ctx carrying the remote span context and baggage of t;
// ctx is returned unchanged when t has no traceparent.
func WithTrace(ctx context.Context, t Trace) context.Context {
	if t.Parent == "" {
		return ctx
	}
	return propagator.Extract(ctx, traceCarrier{&t})
}

// traceCarrier adapts Trace to propagation.TextMapCarrier.
type traceCarrier struct{ t *Trace }

func (c traceCarrier) field(key string) *string {
	switch key {
	case "traceparent":
		return &c.t.Parent
	case "tracestate":
		return &c.t.State
	case "baggage":
		return &c.t.Baggage
	}
	return nil
}

// Get returns key's field ("" for other keys).
func (c traceCarrier) Get(key string) string {
	if f := c.field(key); f != nil {
		return *f
	}
	return ""
}

// Set sets key's field; other keys are dropped.
func (c traceCarrier) Set(key, value string) {
	if f := c.field(key); f != nil {
		*f = value
	}
}

// Keys lists the three fields.
func (c traceCarrier) Keys() []string { return []string{"traceparent", "tracestate", "baggage"} }

// InjectFunc writes ctx's trace context and baggage through set, one
// key at a time, for a carrier of the caller's own (the gateway's upstream
// request fields). A key set again replaces the earlier value.
func InjectFunc(ctx context.Context, set func(key, value string)) {
	propagator.Inject(ctx, setCarrier(set))
}

// setCarrier adapts a setter to propagation.TextMapCarrier for Inject,
// which only sets.
type setCarrier func(key, value string)

// Get returns "" (Inject does not read).
func (setCarrier) Get(string) string { return "" }

// Set passes key and value on.
func (s setCarrier) Set(key, value string) { s(key, value) }

// Keys lists nothing.
func (setCarrier) Keys() []string { return nil }

// natsCarrier adapts nats.Header to propagation.TextMapCarrier. Unlike
// propagation.HeaderCarrier it keeps keys exactly as written (NATS headers
// are case-sensitive), so "traceparent" stays lower case as W3C spells it.
type natsCarrier nats.Header

var _ propagation.TextMapCarrier = natsCarrier(nil)

// Get returns the first value of key, trying the exact key first and the
// canonical MIME form second (publishers that used http.Header rules).
func (c natsCarrier) Get(key string) string {
	if v := c[key]; len(v) > 0 {
		return v[0]
	}
	if v := c[textproto.CanonicalMIMEHeaderKey(key)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Set replaces key's values with value.
func (c natsCarrier) Set(key, value string) { c[key] = []string{value} }

// Keys lists the keys present.
func (c natsCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
