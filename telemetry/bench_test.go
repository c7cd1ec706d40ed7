package telemetry

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
)

// BenchmarkDecode measures decoding one 2-span export in each encoding.
func BenchmarkDecode(b *testing.B) {
	req, err := DecodeExport([]byte(specJSON), ContentTypeJSON)
	if err != nil {
		b.Fatal(err)
	}
	pb, _ := proto.Marshal(req)
	for _, tc := range []struct {
		name, media string
		body        []byte
	}{{"protobuf", ContentTypeProtobuf, pb}, {"json", ContentTypeJSON, []byte(specJSON)}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodeExport(tc.body, tc.media); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkProcessorSpan is the per-span cost of a node's own tracing:
// start and end a span with a few attributes through the in-process
// processor into a store that keeps evicting.
func BenchmarkProcessorSpan(b *testing.B) {
	store := NewStore(StoreConfig{MaxTraces: 1000})
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(store.Processor()))
	defer tp.Shutdown(context.Background())
	tr := tp.Tracer("bench")
	b.ReportAllocs()
	for b.Loop() {
		_, s := tr.Start(context.Background(), "GET /api/users", trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", "GET"), attribute.Int("http.response.status_code", 200)))
		s.End()
	}
}
