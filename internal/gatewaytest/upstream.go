package gatewaytest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// seen is one request as an upstream received it.
type seen struct {
	method   string
	uri      string // the request target as sent on the wire
	header   http.Header
	body     string
	bodyErr  error
	complete bool // its body was read to the end
}

// upstream is a pair of loopback backends that record every request they
// get: the head as soon as it arrives, the body once read. A path
// containing "/fail" is answered 500; everything else 200 "ok".
type upstream struct {
	a, b *httptest.Server
	mu   sync.Mutex
	reqs []*seen
}

func newUpstream(t testing.TB) *upstream {
	u := &upstream{}
	h := http.HandlerFunc(u.serve)
	u.a, u.b = httptest.NewServer(h), httptest.NewServer(h)
	t.Cleanup(func() {
		for _, s := range []*httptest.Server{u.a, u.b} {
			s.CloseClientConnections()
			s.Close()
		}
	})
	return u
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	s := &seen{method: r.Method, uri: r.RequestURI, header: r.Header.Clone()}
	u.mu.Lock()
	u.reqs = append(u.reqs, s)
	u.mu.Unlock()
	b, err := io.ReadAll(r.Body)
	u.mu.Lock()
	s.body, s.bodyErr, s.complete = string(b), err, err == nil
	u.mu.Unlock()
	if strings.Contains(r.URL.Path, "/fail") {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	_, _ = io.WriteString(w, "ok")
}

// matching returns copies of the recorded requests whose target contains
// marker.
func (u *upstream) matching(marker string) []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []seen
	for _, s := range u.reqs {
		if strings.Contains(s.uri, marker) {
			out = append(out, *s)
		}
	}
	return out
}

// all returns copies of every recorded request.
func (u *upstream) all() []seen { return u.matching("") }
