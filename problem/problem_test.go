package problem_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/plexushq/plexus/problem"
)

func TestRoundTripKeepsExtrasAndRetry(t *testing.T) {
	p := problem.New(http.StatusConflict, "version-conflict", "stream moved").With("currentVersion", 3).Retry(2)
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var back problem.Problem
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Slug() != "version-conflict" || back.Status != 409 || back.RetryAfter != 2 || back.Extra["currentVersion"] != 3.0 {
		t.Fatalf("round trip: %+v from %s", back, b)
	}
	var err2 error = &back
	var target *problem.Problem
	if !errors.As(fmt.Errorf("wrapped: %w", err2), &target) || target.Error() != "stream moved" {
		t.Fatal("a *Problem is an error found with errors.As")
	}
}

func TestOfNonProblemBody(t *testing.T) {
	p := problem.Of(502, []byte("  bad gateway from a proxy \n"))
	if p.Status != 502 || p.Detail != "bad gateway from a proxy" || p.Type != "about:blank" || p.Slug() != "" {
		t.Fatalf("%+v", p)
	}
	if p := problem.Of(404, []byte(`{"type":"urn:plexus:problem:not-found","title":"Not Found","status":404}`)); p.Slug() != "not-found" {
		t.Fatalf("%+v", p)
	}
}

func FuzzOf(f *testing.F) {
	f.Add(503, []byte(`{"type":"urn:plexus:problem:engine-unavailable","title":"Service Unavailable","status":503,"retryAfter":2}`))
	f.Add(400, []byte(`{"status":"x"}`))
	f.Add(500, []byte("oops"))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		p := problem.Of(status, body)
		if p == nil || p.Status == 0 && status != 0 {
			t.Fatalf("Of(%d, %q) = %+v", status, body, p)
		}
		_ = p.Error()
	})
}
