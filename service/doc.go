// Package service makes a Go microservice a few lines: Run serves a handler
// with /health and /metrics, registers the instance with a Plexus registry,
// heartbeats its lease, traces and logs every request (W3C trace context in,
// a server span per request, spans exported to the node), and on SIGTERM or
// cancellation marks itself draining, lets in-flight requests finish,
// deregisters and returns.
package service
