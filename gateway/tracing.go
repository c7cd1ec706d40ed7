package gateway

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/plexushq/plexus/telemetry"
)

// apiRouteTemplate is http.route of /api/{service}/… requests.
const apiRouteTemplate = "/api/{service}/*"

// routeTemplate is the OpenTelemetry http.route of a request: the
// low-cardinality path template it matched, never the path itself.
func routeTemplate(rt *route) string {
	switch {
	case rt == nil:
		return apiRouteTemplate
	case rt.anyPath:
		return "/*"
	}
	return rt.prefix + "/*"
}

// startSpan opens the gateway's server span for a proxied request, as a
// child of the client's traceparent when it sent one. Per the OpenTelemetry
// HTTP conventions it is named "{method} {http.route}" (GET
// /api/{service}/*), so spans group by route, not by path; the service is
// the plexus.service attribute. Without a tracer provider the gateway only
// propagates (or creates) traceparent.
func (g *Gateway) startSpan(ex *exchange, rt *route) {
	if g.tracer == nil {
		return
	}
	r := ex.r
	tmpl := routeTemplate(rt)
	method := methodLabel(r.Method)
	if method == "_OTHER" {
		method = "HTTP" // the conventions' span name for a method outside the known set
	}
	ctx := telemetry.ExtractHTTP(r.Context(), r.Header)
	ctx, span := g.tracer.Start(ctx, method+" "+tmpl, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(
			attribute.String("http.request.method", r.Method),
			attribute.String("http.route", tmpl),
			attribute.String("url.path", r.URL.Path),
			attribute.String("plexus.service", ex.service),
			attribute.String("plexus.route", ex.route),
			attribute.String("client.address", ex.clientIP),
		))
	ex.r = r.WithContext(ctx)
	ex.span = span
}

// injectTrace writes the span's context into the upstream request's
// header; it reports false when there is no span.
func injectTrace(ex *exchange, set func(key, value string)) bool {
	if ex.span == nil || !ex.span.SpanContext().IsValid() {
		return false
	}
	telemetry.InjectFunc(trace.ContextWithSpan(context.Background(), ex.span), set)
	return true
}

// endSpan records the outcome and ends the span.
func endSpan(ex *exchange) {
	if ex.span == nil {
		return
	}
	ex.span.SetAttributes(
		attribute.Int("http.response.status_code", ex.status),
		attribute.String("plexus.upstream", ex.upstream),
		attribute.Int("plexus.attempts", ex.attempts),
	)
	if ex.status >= 500 {
		ex.span.SetStatus(codes.Error, http.StatusText(ex.status))
	}
	ex.span.End()
}

// noEndTry is startTry's answer when no client span is recorded.
func noEndTry(int, error) {}

// startTry opens a client span for one upstream try, a child of the
// gateway's server span, and writes its context into the try's fields so
// the instance's span becomes its child; the returned func ends it with
// the try's outcome (its status, or its error). Retries show as sibling
// client spans with http.request.resend_count.
func (g *Gateway) startTry(ex *exchange, u *upstream, f *forwarding) func(int, error) {
	if ex.span == nil || !ex.span.IsRecording() {
		return noEndTry
	}
	_, cs := g.tracer.Start(trace.ContextWithSpan(context.Background(), ex.span), ex.r.Method+" "+ex.service,
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("plexus.instance", u.id), attribute.Int("http.request.resend_count", ex.attempts-1)))
	telemetry.InjectFunc(trace.ContextWithSpan(context.Background(), cs), setField(&f.fields))
	return func(status int, err error) {
		switch {
		case err != nil:
			cs.RecordError(err)
			cs.SetStatus(codes.Error, err.Error())
		default:
			cs.SetAttributes(attribute.Int("http.response.status_code", status))
			if status >= 500 {
				cs.SetStatus(codes.Error, http.StatusText(status))
			}
		}
		cs.End()
	}
}

// breakerSkipped records on the server span that an instance was skipped
// because its breaker is open.
func breakerSkipped(ex *exchange, u *upstream) {
	if ex.span != nil && ex.span.IsRecording() {
		ex.span.AddEvent("instance breaker open", trace.WithAttributes(attribute.String("plexus.instance", u.id)))
	}
}
