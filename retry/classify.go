package retry

import (
	"context"
	"errors"
	"net"
	"net/http"
)

// Idempotent reports the methods RFC 9110 (§9.2.2) defines as idempotent:
// sending one twice has the effect of sending it once.
func Idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// DialError reports a failure to open the connection: the request was
// never sent, so sending it to another instance is safe whatever its
// method.
func DialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// RetryableStatus reports the answers that say "this instance, not the
// request": 502, 503 and 504. An idempotent request may be sent to
// another instance after one.
func RetryableStatus(status int) bool {
	switch status {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// Failure classifies a call's result for breakers and passive health: a
// transport error (connection refused or reset, timeout, deadline
// exceeded) or a 5xx status counts against the backend; 2xx, 3xx and 4xx
// do not (the backend answered; the client was wrong), and neither does a
// call its own caller cancelled (context.Canceled).
func Failure(status int, err error) bool {
	if err != nil {
		return !errors.Is(err, context.Canceled)
	}
	return status >= 500
}
