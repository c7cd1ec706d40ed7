// Package httpx holds the HTTP conventions every Plexus API shares: RFC 9457
// problem answers and the one mapping of errors to them (errors.go), strict
// request bodies (json.go), request deadlines (deadline.go), server-sent
// events with heartbeats and write deadlines (sse.go) and the cap on
// concurrent streams (slots.go).
package httpx

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
)

// ProblemTypeBase prefixes the type URI of Plexus's own problem kinds.
const ProblemTypeBase = "urn:plexus:problem:"

// Problem is an RFC 9457 problem detail. It is also an error, so core code
// can return one that already knows its HTTP status.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Extra members, e.g. "currentVersion".
	Extra map[string]any `json:"-"`
	// RetryAfter, when positive, says in how many seconds a retry may
	// succeed. It is sent twice, always together: as the Retry-After
	// header and as the body's "retryAfter" member.
	RetryAfter int `json:"-"`
}

// NewProblem builds a problem with a type slug ("" means about:blank) and a detail.
func NewProblem(status int, slug, detail string) *Problem {
	typ := "about:blank"
	if slug != "" {
		typ = ProblemTypeBase + slug
	}
	return &Problem{Type: typ, Title: http.StatusText(status), Status: status, Detail: detail}
}

// Retry sets RetryAfter and returns p.
func (p *Problem) Retry(seconds int) *Problem {
	p.RetryAfter = seconds
	return p
}

// With adds an extra member and returns p.
func (p *Problem) With(key string, value any) *Problem {
	if p.Extra == nil {
		p.Extra = map[string]any{}
	}
	p.Extra[key] = value
	return p
}

func (p *Problem) Error() string {
	if p.Detail != "" {
		return p.Detail
	}
	return p.Title
}

// MarshalJSON writes the standard members and the extras at the top level.
func (p *Problem) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, 4+len(p.Extra))
	for k, v := range p.Extra {
		m[k] = v
	}
	m["type"], m["title"], m["status"] = p.Type, p.Title, p.Status
	if p.Detail != "" {
		m["detail"] = p.Detail
	}
	if p.RetryAfter > 0 {
		m["retryAfter"] = p.RetryAfter
	} else {
		delete(m, "retryAfter")
	}
	return json.Marshal(m)
}

// UnmarshalJSON reads the standard members and keeps the rest in Extra.
func (p *Problem) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	take := func(k string, dst any) {
		if v, ok := m[k]; ok {
			_ = json.Unmarshal(v, dst)
			delete(m, k)
		}
	}
	take("type", &p.Type)
	take("title", &p.Title)
	take("status", &p.Status)
	take("detail", &p.Detail)
	if v, ok := m["retryAfter"]; ok { // read, and kept among the extras as it was sent
		_ = json.Unmarshal(v, &p.RetryAfter)
	}
	if len(m) > 0 {
		p.Extra = make(map[string]any, len(m))
		for k, v := range m {
			var x any
			_ = json.Unmarshal(v, &x)
			p.Extra[k] = x
		}
	}
	return nil
}

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
