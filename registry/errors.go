package registry

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/plexushq/plexus/internal/httpx"
)

// Sentinel errors of the registry; match them with errors.Is.
var (
	// ErrNotFound means the service or instance is not registered (or its
	// lease expired). Heartbeat callers re-register on it.
	ErrNotFound = errors.New("registry: not found")
	// ErrInvalid wraps every validation failure; the *ValidationError in
	// the chain names the field.
	ErrInvalid = errors.New("registry: invalid")
	// ErrBadName is a service or instance name that does not fit the rules.
	ErrBadName = errors.New("registry: bad name")
	// ErrConflict means a compare-and-set update lost too many races in a
	// row; the caller may retry.
	ErrConflict = errors.New("registry: concurrent update conflict")
	// ErrStaleCheck means a check result arrived after a newer one (from
	// another checker) was stored; it was dropped.
	ErrStaleCheck = errors.New("registry: a newer check result is stored")
	// ErrExpired means the instance's lease ended before the write.
	ErrExpired = errors.New("registry: lease expired")
)

// ValidationError is an invalid value of a registration or status request.
type ValidationError struct {
	Field  string // JSON path of the field, e.g. "check.interval"
	Reason string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("registry: %s: %s", e.Field, e.Reason)
}

// Is makes every ValidationError match ErrInvalid.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// NameError is a bad service or instance name (a path segment).
type NameError struct {
	Kind string // "service" or "instance id"
	Name string
	Why  string
}

func (e *NameError) Error() string {
	return fmt.Sprintf("registry: %s %q: %s", e.Kind, e.Name, e.Why)
}

// Is makes every NameError match ErrBadName.
func (e *NameError) Is(target error) bool { return target == ErrBadName }

// notFound builds an ErrNotFound naming the thing.
func notFound(service, id string) error {
	if id == "" {
		return fmt.Errorf("%w: service %q has no instances", ErrNotFound, service)
	}
	return fmt.Errorf("%w: instance %q of service %q", ErrNotFound, id, service)
}

// apiProblem maps the registry's own errors to their RFC 9457 answers; it is
// the domain half of the API's httpx.Errors (engine failures and the rest
// are mapped there). Nil for errors it does not know.
func apiProblem(err error) *httpx.Problem {
	var ve *ValidationError
	var ne *NameError
	switch {
	case errors.As(err, &ne):
		return httpx.NewProblem(http.StatusBadRequest, "bad-name", ne.Error()).With("field", ne.Kind)
	case errors.As(err, &ve):
		return httpx.NewProblem(http.StatusUnprocessableEntity, "invalid-value", ve.Error()).With("field", ve.Field)
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrExpired):
		return httpx.NewProblem(http.StatusNotFound, "not-found", err.Error())
	case errors.Is(err, ErrConflict), errors.Is(err, ErrStaleCheck):
		return httpx.NewProblem(http.StatusConflict, "conflict", err.Error()).Retry(httpx.RetryBusy)
	}
	return nil
}
