package telemetry

import (
	"context"
	"net/http"
	"testing"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"
)

func testSpanContext() trace.SpanContext {
	return trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanID:     trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8},
		TraceFlags: trace.FlagsSampled,
	})
}

func TestHeaderRoundTrip(t *testing.T) {
	t.Parallel()
	m, _ := baggage.NewMember("tenant", "acme")
	bag, _ := baggage.New(m)
	ctx := baggage.ContextWithBaggage(trace.ContextWithSpanContext(context.Background(), testSpanContext()), bag)

	h := nats.Header{}
	InjectHeader(ctx, h)
	if got := h["traceparent"]; len(got) != 1 || got[0] != "00-0102030405060708090a0b0c0d0e0f10-0102030405060708-01" {
		t.Fatalf("traceparent = %v", got)
	}
	out := ExtractHeader(context.Background(), h)
	sc := trace.SpanContextFromContext(out)
	if !sc.IsRemote() || sc.TraceID() != testSpanContext().TraceID() || sc.SpanID() != testSpanContext().SpanID() {
		t.Fatalf("extracted %v", sc)
	}
	if v := baggage.FromContext(out).Member("tenant").Value(); v != "acme" {
		t.Fatalf("baggage tenant = %q", v)
	}

	hh := http.Header{}
	InjectHTTP(ctx, hh)
	if hh.Get("traceparent") == "" || hh.Get("baggage") != "tenant=acme" {
		t.Fatalf("http carrier = %v", hh)
	}
	if sc := trace.SpanContextFromContext(ExtractHTTP(context.Background(), hh)); sc.TraceID() != testSpanContext().TraceID() {
		t.Fatalf("http extract = %v", sc)
	}
}

// TestInjectNothingWithoutContext: an untraced publish writes no header.
func TestInjectNothingWithoutContext(t *testing.T) {
	t.Parallel()
	h := nats.Header{}
	InjectHeader(context.Background(), h)
	if len(h) != 0 {
		t.Fatalf("headers written without a trace: %v", h)
	}
}

func TestExtractCanonicalAndNil(t *testing.T) {
	t.Parallel()
	h := nats.Header{}
	h.Set("Traceparent", "00-0102030405060708090a0b0c0d0e0f10-0102030405060708-01")
	if sc := trace.SpanContextFromContext(ExtractHeader(context.Background(), h)); !sc.IsValid() {
		t.Fatal("canonical key not found")
	}
	ctx := context.Background()
	if ExtractHeader(ctx, nil) != ctx || ExtractHeader(ctx, nats.Header{"X-Other": {"1"}}) != ctx {
		t.Fatal("nil carrier must leave ctx unchanged")
	}
}
