package gateway

import (
	"errors"

	"github.com/plexushq/plexus/breaker"
	"github.com/plexushq/plexus/retry"
)

// Charge failures to whoever caused them: time spent waiting on a client,
// a client that went away and a client's broken body say nothing about an
// upstream, so they never count for its breakers, passive health or the
// retry budget. This file holds that decision, free of any transport.

// errUpstreamTimeout is the cancel cause when a request's timeout fires
// while the gateway waits on the upstream.
var errUpstreamTimeout = errors.New("upstream timeout")

// errClientSlow is the cancel cause when a request's timeout fires while
// the gateway waits for the client's body.
var errClientSlow = errors.New("the request body did not arrive within the timeout")

// culprit says whose fault a failed try is.
type culprit int8

const (
	noFault       culprit = iota // the upstream answered; its status decides
	upstreamFault                // connection error, reset, or the upstream ran out the timeout
	clientFault                  // the client went away, its body broke, or the time went to waiting for it
)

// classify blames a try: err is what the transport returned, cause the
// request context's cancel cause (nil while it runs), bodyErr the failure
// reading the client's body (nil if none). A broken client body is the
// client's fault even when the upstream answered: it answered a request
// cut short.
func classify(err, cause, bodyErr error) culprit {
	switch {
	case bodyErr != nil:
		return clientFault
	case err == nil:
		return noFault
	case cause == nil, errors.Is(cause, errUpstreamTimeout):
		return upstreamFault
	}
	return clientFault // errClientSlow, or the client's own cancellation
}

// verdict is what a breaker learns from a request.
type verdict int8

const (
	verdictOK     verdict = iota // the upstream answered well (2xx–4xx)
	verdictFailed                // the upstream failed (connection error, timeout, 5xx)
	verdictNone                  // nothing: the client's doing
)

// verdictOf turns a try's culprit and status into a breaker verdict.
func verdictOf(c culprit, status int) verdict {
	switch {
	case c == clientFault:
		return verdictNone
	case c == upstreamFault || retry.Failure(status, nil):
		return verdictFailed
	}
	return verdictOK
}

// settle hands a breaker ticket back with the verdict; a request that says
// nothing about the upstream frees its ticket (and a half-open probe slot)
// without a result.
func settle(br *breaker.Breaker, tk breaker.Ticket, v verdict) {
	if br == nil {
		return
	}
	if v == verdictNone {
		br.Release(tk)
		return
	}
	br.Done(tk, v == verdictOK)
}
