package telemetry

import (
	"context"
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

	mm := map[string]string{}
	InjectMap(ctx, mm)
	if mm["traceparent"] == "" || mm["baggage"] != "tenant=acme" {
		t.Fatalf("map carrier = %v", mm)
	}
	if sc := trace.SpanContextFromContext(ExtractMap(context.Background(), mm)); sc.TraceID() != testSpanContext().TraceID() {
		t.Fatalf("map extract = %v", sc)
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
	if ExtractHeader(ctx, nil) != ctx || ExtractMap(ctx, nil) != ctx {
		t.Fatal("nil carrier must leave ctx unchanged")
	}
}
