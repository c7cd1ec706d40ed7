package client

import (
	"net/http"
	"testing"
	"time"
)

func FuzzStatusError(f *testing.F) {
	f.Add("application/problem+json", []byte(`{"type":"urn:plexus:problem:conflict","title":"Conflict","status":409,"detail":"x","currentVersion":3}`))
	f.Add("application/problem+json; charset=utf-8", []byte(`{"status":"nope"}`))
	f.Add("text/plain", []byte("boom"))
	f.Add("application/problem+json", []byte(`[`))
	f.Fuzz(func(t *testing.T, ctype string, body []byte) {
		h := http.Header{"Content-Type": {ctype}}
		err := statusError(&StatusError{Service: "s", Method: "GET", Path: "/", StatusCode: 418, Header: h, Body: body})
		if err == nil || err.Error() == "" {
			t.Fatal("no error")
		}
	})
}

func FuzzRetryAfter(f *testing.F) {
	f.Add("120")
	f.Add("Wed, 21 Oct 2015 07:28:00 GMT")
	f.Add("-1")
	f.Add("")
	now := time.Unix(1445412480, 0)
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := retryAfter(http.Header{"Retry-After": {v}}, now)
		if ok && d < 0 {
			t.Fatalf("negative Retry-After %v from %q", d, v)
		}
	})
}
