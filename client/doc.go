// Package client is the service client SDK: it calls other services by name,
// discovering instances from a watch-fed local registry cache (no registry
// round trip per call), balancing between them, isolating bad instances with
// per-instance circuit breakers, bounding every call with a timeout,
// retrying only what is safe with exponential backoff and full jitter under a
// retry budget, optionally hedging slow requests, propagating W3C trace
// context and recording metrics. Problem answers (RFC 9457) become typed
// errors.
package client
