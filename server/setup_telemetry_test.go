package server

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/plexushq/plexus/telemetry"
)

// TestTelemetryReceiverAndOwnSpans: an external service exports to the
// node's POST /v1/traces with the admin token, the node's own spans land in
// the same store in-process, and both are served by GET /v1/traces.
func TestTelemetryReceiverAndOwnSpans(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "plexus.yaml")
	if err := os.WriteFile(cfgFile, []byte("telemetry:\n  sampleRatio: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, Config{AdminToken: "0123456789abcdef0123", Roles: []string{RoleControl}, ConfigFile: cfgFile})
	base := "http://" + n.AdminAddr()

	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(base+"/v1/traces"),
		otlptracehttp.WithHeaders(map[string]string{"Authorization": "Bearer " + n.Token()}))
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "orders"))))
	_, span := tp.Tracer("t").Start(context.Background(), "GET /orders")
	span.End()
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatalf("export to the node: %v", err)
	}
	_, own := n.tracer.Tracer("t").Start(context.Background(), "node-op")
	own.End()

	for _, tc := range []struct{ id, service string }{
		{span.SpanContext().TraceID().String(), "orders"},
		{own.SpanContext().TraceID().String(), "plexus"},
	} {
		resp, body := get(t, base+"/v1/traces/"+tc.id, n.Token())
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET trace %s: %d %s", tc.id, resp.StatusCode, body)
		}
		var d telemetry.TraceDetail
		if err := json.Unmarshal(body, &d); err != nil || len(d.Spans) != 1 || d.Spans[0].Service != tc.service {
			t.Fatalf("trace %s: %s (%v)", tc.id, body, err)
		}
	}
	if resp, _ := get(t, base+"/v1/traces", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("traces without token: %d", resp.StatusCode)
	}
}
