package eventstore_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/plexushq/plexus/eventstore"
)

// faultProxy stands between the client and a real Events API and spoils
// the first appends: "lose" forwards the append and answers 503 instead of
// the node's answer (the write landed, the client does not know), "refuse"
// answers 503 without forwarding, "reset" forwards and then drops the
// connection.
type faultProxy struct {
	mode    string
	spoil   atomic.Int32 // appends left to spoil
	appends atomic.Int32 // appends seen
	rp      *httputil.ReverseProxy
}

func (f *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	isAppend := r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/events")
	if !isAppend {
		f.rp.ServeHTTP(w, r)
		return
	}
	f.appends.Add(1)
	if f.spoil.Add(-1) < 0 {
		f.rp.ServeHTTP(w, r)
		return
	}
	unavailable := func() {
		w.Header().Set("Content-Type", "application/problem+json")
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"type":"urn:plexus:problem:engine-unavailable","title":"Service Unavailable","status":503,"retryAfter":1}`)
	}
	switch f.mode {
	case "refuse":
		unavailable()
	case "lose", "reset":
		rec := httptest.NewRecorder()
		f.rp.ServeHTTP(rec, r)
		if f.mode == "lose" {
			unavailable()
			return
		}
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	}
}

func startFaultProxy(t *testing.T, target, mode string, spoil int32) (*faultProxy, string) {
	u, _ := url.Parse(target)
	f := &faultProxy{mode: mode, rp: httputil.NewSingleHostReverseProxy(u)}
	f.spoil.Store(spoil)
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

// TestClientRetriesAppendsOnce: a failover answers appends with 503, or
// loses the answer of an append that was stored, or drops the connection.
// The client retries by itself, with the same expected version and event
// ids, and every append is stored exactly once (the version says so and
// the stream holds each event once); a real conflict and a bad request
// are not retried.
func TestClientRetriesAppendsOnce(t *testing.T) {
	a := startAPI(t, eventstore.APIConfig{})
	ctx := ctxT(t)
	for _, mode := range []string{"refuse", "lose", "reset"} {
		t.Run(mode, func(t *testing.T) {
			f, url := startFaultProxy(t, a.url, mode, 2)
			c := eventstore.NewClient(url, "", nil)
			stream := "retry-" + mode
			res, err := c.Append(ctx, stream, eventstore.NoStream, ev("t", 1), ev("t", 2))
			if err != nil || res.Version != 2 {
				t.Fatalf("append through %s: %+v %v", mode, res, err)
			}
			res, err = c.Append(ctx, stream, eventstore.AnyVersion, ev("t", 3))
			if err != nil || res.Version != 3 {
				t.Fatalf("any-version append: %+v %v", res, err)
			}
			got, err := c.ReadStream(ctx, stream, 1, 100)
			if err != nil || len(got) != 3 {
				t.Fatalf("stream holds %d events (%v), want 3", len(got), err)
			}
			if f.spoil.Load() > 0 {
				t.Fatalf("%d faults left unused after %d append attempts", f.spoil.Load(), f.appends.Load())
			}
		})
	}
	f, url := startFaultProxy(t, a.url, "refuse", 0)
	c := eventstore.NewClient(url, "", nil)
	if _, err := c.Append(ctx, "retry-refuse", 1, ev("t", 4)); !errors.As(err, new(*eventstore.ConflictError)) {
		t.Fatalf("conflict: %v", err)
	}
	if _, err := c.Append(ctx, "retry-refuse", eventstore.AnyVersion, eventstore.Event{Type: "bad type"}); !errors.Is(err, eventstore.ErrInvalid) {
		t.Fatalf("invalid: %v", err)
	}
	if n := f.appends.Load(); n != 2 {
		t.Fatalf("%d attempts for a conflict and a bad request, want 1 each", n)
	}
	c.SetAttempts(1)
	f.spoil.Store(1)
	if _, err := c.Append(ctx, "retry-off", eventstore.AnyVersion, ev("t", 1)); err == nil {
		t.Fatal("an append with retries off went through a 503")
	}
}
