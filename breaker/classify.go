package breaker

import (
	"context"
	"errors"
)

// IsFailure classifies the result of a call for Done: a transport error
// (connection refused or reset, timeout, deadline exceeded) or a 5xx status
// is a failure; 2xx, 3xx and 4xx are not (the backend answered; the client
// was wrong). A call cancelled by its own caller (context.Canceled) is not
// the backend's fault and is not a failure either.
func IsFailure(status int, err error) bool {
	if err != nil {
		return !errors.Is(err, context.Canceled)
	}
	return status >= 500
}
