package eventstore

import (
	"context"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// propagator carries W3C trace context and baggage with every event.
var propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

func tracerFrom(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return tp.Tracer("github.com/plexushq/plexus/eventstore")
}

// fieldsCarrier adapts traceFields to the propagator.
type fieldsCarrier struct{ f *traceFields }

func (c fieldsCarrier) Get(key string) string {
	switch key {
	case "traceparent":
		return c.f.parent
	case "tracestate":
		return c.f.state
	case "baggage":
		return c.f.baggage
	}
	return ""
}

func (c fieldsCarrier) Set(key, value string) {
	switch key {
	case "traceparent":
		c.f.parent = value
	case "tracestate":
		c.f.state = value
	case "baggage":
		c.f.baggage = value
	}
}

func (c fieldsCarrier) Keys() []string { return []string{"traceparent", "tracestate", "baggage"} }

// traceOf is ctx's trace context; empty when ctx has none.
func traceOf(ctx context.Context) traceFields {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return traceFields{}
	}
	f := new(traceFields)
	propagator.Inject(ctx, fieldsCarrier{f})
	return *f
}

// withTrace returns ctx with the trace context f.
func withTrace(ctx context.Context, f traceFields) context.Context {
	if f.parent == "" {
		return ctx
	}
	return propagator.Extract(ctx, fieldsCarrier{&f})
}
