package gateway

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestServerSpanNamedByRouteTemplate: the gateway's server span is named
// "{method} {http.route}" with the route template, never the path or the
// route's label (OpenTelemetry HTTP conventions), and carries http.route
// and plexus.service.
func TestServerSpanNamedByRouteTemplate(t *testing.T) {
	eachTransport(t, testServerSpanNamedByRouteTemplate)
}

func testServerSpanNamedByRouteTemplate(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	be := backend(t, echo)
	h := startGateway(t, Config{Routes: []RouteConfig{{Name: "shop-route", Match: RouteMatch{PathPrefix: "/shop"}, Service: "svc"}}},
		Options{TracerProvider: tp})
	h.disc.set("svc", be.URL)
	for _, tc := range []struct{ method, path, name, route string }{
		{"GET", "/api/svc/users/42?x=1", "GET /api/{service}/*", "/api/{service}/*"},
		{"POST", "/shop/cart/7", "POST /shop/*", "/shop/*"},
		{"PROPFIND", "/api/svc/x", "HTTP /api/{service}/*", "/api/{service}/*"},
	} {
		exp.Reset()
		do(t, client(t), mustReq(t, tc.method, h.url+tc.path, nil))
		var server *tracetest.SpanStub
		for i, s := range exp.GetSpans() {
			if s.SpanKind == trace.SpanKindServer {
				server = &exp.GetSpans()[i]
			}
		}
		if server == nil {
			t.Fatalf("%s %s: no server span", tc.method, tc.path)
		}
		attrs := map[attribute.Key]string{}
		for _, kv := range server.Attributes {
			attrs[kv.Key] = kv.Value.String()
		}
		if server.Name != tc.name || attrs["http.route"] != tc.route || attrs["plexus.service"] != "svc" ||
			attrs["http.request.method"] != tc.method {
			t.Errorf("%s %s: span %q with %v, want %q with http.route %q and plexus.service svc",
				tc.method, tc.path, server.Name, attrs, tc.name, tc.route)
		}
	}
}
