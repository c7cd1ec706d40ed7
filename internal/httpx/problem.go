// Package httpx holds the HTTP conventions every Plexus API shares: RFC 9457
// problem answers and the one mapping of errors to them (errors.go), strict
// request bodies (json.go), request deadlines (deadline.go), server-sent
// events with heartbeats and write deadlines (sse.go) and the cap on
// concurrent streams (slots.go).
package httpx

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/plexushq/plexus/problem"
)

// ProblemTypeBase prefixes the type URI of Plexus's own problem kinds.
const ProblemTypeBase = problem.TypeBase

// Problem is an RFC 9457 problem detail (package problem): it is also an
// error, so core code can return one that already knows its HTTP status.
type Problem = problem.Problem

// NewProblem builds a problem with a type slug ("" means about:blank) and a detail.
func NewProblem(status int, slug, detail string) *Problem { return problem.New(status, slug, detail) }

// WriteProblem sends p as application/problem+json, with the Retry-After
// header when p has a retry hint. It does not log: handlers send errors
// through Errors.Write, which logs every 5xx once.
func WriteProblem(w http.ResponseWriter, p *Problem) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	if p.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(p.RetryAfter))
	}
	b, err := p.MarshalJSON()
	if err != nil {
		b = []byte(`{"type":"about:blank","title":"Internal Server Error","status":500}`)
	}
	w.WriteHeader(p.Status)
	_, _ = w.Write(append(b, '\n'))
}

// Error sends a problem built from status and detail.
func Error(w http.ResponseWriter, status int, detail string) {
	WriteProblem(w, NewProblem(status, "", detail))
}

// WriteError sends err as a problem: a *Problem anywhere in its chain keeps
// its status; anything else is a 500 whose detail is not leaked. Prefer
// Errors.Write, which also maps engine failures and logs.
func WriteError(w http.ResponseWriter, err error) {
	var p *Problem
	if errors.As(err, &p) {
		WriteProblem(w, p)
		return
	}
	WriteProblem(w, NewProblem(http.StatusInternalServerError, "internal", "internal error"))
}
