package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"

	"github.com/plexushq/plexus/problem"
)

// ErrNoInstances is returned when the service has no healthy instance in
// the cache (unknown service included).
var ErrNoInstances = errors.New("no healthy instances")

// ErrAllOpen is returned when every healthy instance's breaker is open. It
// wraps breaker.ErrOpen too.
var ErrAllOpen = errors.New("every instance's circuit breaker is open")

// StatusError is a non-2xx answer. Its Error text follows the seed's
// ServiceClient (docs/client.md): "HTTP <status>: <text>".
type StatusError struct {
	Service    string
	Method     string
	Path       string
	Instance   string
	StatusCode int
	Header     http.Header
	// Body is the answer's body (bounded by Config.MaxResponseBytes).
	Body []byte
}

func (e *StatusError) Error() string {
	text := strings.TrimSpace(string(e.Body))
	if len(text) > 200 {
		text = text[:200] + "…"
	}
	if text == "" {
		text = http.StatusText(e.StatusCode)
	}
	return fmt.Sprintf("%s %s %s: HTTP %d: %s", e.Service, e.Method, e.Path, e.StatusCode, text)
}

// ProblemError is a non-2xx answer carrying an RFC 9457 problem body. Use
// errors.As(err, &pe) with pe *ProblemError; errors.As to *StatusError
// works too.
type ProblemError struct {
	problem.Problem
	Status *StatusError
}

func (e *ProblemError) Error() string {
	return fmt.Sprintf("%s %s %s: HTTP %d: %s", e.Status.Service, e.Status.Method, e.Status.Path,
		e.Status.StatusCode, e.Problem.Error())
}

// Unwrap gives the StatusError.
func (e *ProblemError) Unwrap() error { return e.Status }

// statusError builds the error for a non-2xx answer.
func statusError(se *StatusError) error {
	mt, _, _ := mime.ParseMediaType(se.Header.Get("Content-Type"))
	if mt != "application/problem+json" {
		return se
	}
	pe := &ProblemError{Status: se}
	if err := json.Unmarshal(se.Body, &pe.Problem); err != nil {
		return se
	}
	if pe.Problem.Status == 0 {
		pe.Problem.Status = se.StatusCode
	}
	return pe
}
