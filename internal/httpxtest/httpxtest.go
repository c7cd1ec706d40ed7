// Package httpxtest checks answers against the failure contract of
// internal/httpx in tests: problem+json bodies, and a retry hint sent as
// the Retry-After header and the body's retryAfter together.
package httpxtest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"testing"

	"github.com/plexushq/plexus/internal/httpx"
)

// Problem decodes a problem answer, checks that its status is status and
// that the Retry-After header and the body's retryAfter agree (both
// absent, or both the same number of seconds), and returns it.
func Problem(t testing.TB, status int, h http.Header, body []byte) *httpx.Problem {
	t.Helper()
	if ct := h.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type %q, want application/problem+json: %s", ct, body)
	}
	var p httpx.Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("problem body %q: %v", body, err)
	}
	if p.Status != status {
		t.Fatalf("status %d in the body, want %d: %s", p.Status, status, body)
	}
	hdr := h.Get("Retry-After")
	switch {
	case hdr == "" && p.RetryAfter == 0:
	case hdr == strconv.Itoa(p.RetryAfter) && p.RetryAfter > 0:
	default:
		t.Fatalf("Retry-After header %q and body retryAfter %d disagree: %s", hdr, p.RetryAfter, body)
	}
	return &p
}

// Retry is Problem that also wants a retry hint.
func Retry(t testing.TB, status int, h http.Header, body []byte) *httpx.Problem {
	t.Helper()
	p := Problem(t, status, h, body)
	if p.RetryAfter <= 0 {
		t.Fatalf("no retry hint in a %d answer: %s", status, body)
	}
	return p
}
