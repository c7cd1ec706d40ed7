// Package httpx holds the HTTP conventions every Plexus API shares: RFC 9457
// problem answers, strict JSON decoding and JSON encoding.
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
	// Extra members, e.g. "currentVersion" or "retryAfter".
	Extra map[string]any `json:"-"`
	// RetryAfter, when positive, is sent as the Retry-After header (seconds).
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

// WriteProblem sends p as application/problem+json.
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
// its status; anything else is a 500 whose detail is not leaked.
func WriteError(w http.ResponseWriter, err error) {
	var p *Problem
	if errors.As(err, &p) {
		WriteProblem(w, p)
		return
	}
	WriteProblem(w, NewProblem(http.StatusInternalServerError, "internal", "internal error"))
}
