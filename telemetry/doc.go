// Package telemetry owns Plexus's tracing: OpenTelemetry tracer setup for
// every component (W3C trace context and baggage, OTLP/HTTP export), trace
// context helpers for message and event headers, the OTLP/HTTP receiver at
// POST /v1/traces and a bounded in-memory store of recent traces with its
// query API.
package telemetry
