// Package problem is the RFC 9457 problem detail every Plexus HTTP API
// answers errors with (application/problem+json, the Problem schema of
// docs/openapi.yaml), as a Go type: the APIs build them, and the Go clients
// (registry, eventstore, queue, client) return them inside their errors,
// so callers read Type, Status, Detail, RetryAfter and the extension
// members with errors.As.
package problem

import (
	"encoding/json"
	"net/http"
	"strings"
)

// TypeBase prefixes the type URI of Plexus's own problem kinds.
const TypeBase = "urn:plexus:problem:"

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

// New builds a problem with a type slug ("" means about:blank) and a detail.
func New(status int, slug, detail string) *Problem {
	typ := "about:blank"
	if slug != "" {
		typ = TypeBase + slug
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

// Of is the problem of an error answer: its body decoded when it is a
// problem, else one built from the status and the body's text.
func Of(status int, body []byte) *Problem {
	p := &Problem{}
	if json.Unmarshal(body, p) != nil || p.Status == 0 {
		text := strings.TrimSpace(string(body))
		if len(text) > 512 {
			text = text[:512] + "…"
		}
		p = New(status, "", text)
	}
	return p
}

// Slug is the part of Type after TypeBase ("" for other types).
func (p *Problem) Slug() string {
	s, ok := strings.CutPrefix(p.Type, TypeBase)
	if !ok {
		return ""
	}
	return s
}
