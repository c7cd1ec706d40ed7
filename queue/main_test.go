package queue

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/internal/enginetest"
	"github.com/plexushq/plexus/internal/plexustest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The embedded NATS server and client keep a few process-wide goroutines.
		goleak.IgnoreTopFunction("github.com/nats-io/nats-server/v2/server.(*Server).startGoRoutine.func1"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*Server).StartProfiler"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreTopFunction("time.Sleep"),
		goleak.Cleanup(func(code int) {
			plexustest.Cleanup()
			os.Exit(code)
		}),
	)
}

// offsetClock is the wall clock moved by an offset, for TTL decisions.
type offsetClock struct{ off atomic.Int64 }

func (c *offsetClock) Now() time.Time { return time.Now().Add(time.Duration(c.off.Load())) }

// skip moves the clock d ahead of the wall clock.
func (c *offsetClock) skip(d time.Duration) { c.off.Store(int64(d)) }

type fixture struct {
	t   *testing.T
	c   *Broker
	clk *offsetClock
	ctx context.Context
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureOn(t, enginetest.Start(t), nil)
}

func newFixtureOpts(t *testing.T, opt func(*Options)) *fixture {
	t.Helper()
	return newFixtureOn(t, enginetest.Start(t), opt)
}

// newFixtureOn runs a client on eng with the test options, changed by opt.
func newFixtureOn(t *testing.T, eng *engine.Engine, opt func(*Options)) *fixture {
	t.Helper()
	clk := &offsetClock{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	o := Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Clock: clk,
		PollInterval: 50 * time.Millisecond, ConfigRefresh: time.Millisecond,
	}
	if opt != nil {
		opt(&o)
	}
	c, err := New(ctx, eng.JetStream(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &fixture{t: t, c: c, clk: clk, ctx: ctx}
}

func (f *fixture) create(name string, cfg Config) {
	f.t.Helper()
	if _, _, err := f.c.CreateQueue(f.ctx, name, cfg); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) publish(q string, m Message) string {
	f.t.Helper()
	id, err := f.c.Publish(f.ctx, q, m)
	if err != nil {
		f.t.Fatal(err)
	}
	return id
}

func (f *fixture) receive(q string, max int, wait time.Duration) []*Delivery {
	f.t.Helper()
	ds, err := f.c.Receive(f.ctx, q, ReceiveOptions{Max: max, Wait: wait})
	if err != nil {
		f.t.Fatal(err)
	}
	return ds
}

func (f *fixture) ack(q string, ds ...*Delivery) {
	f.t.Helper()
	rs := make([]string, len(ds))
	for i, d := range ds {
		rs[i] = d.Receipt
	}
	if err := f.c.Ack(f.ctx, q, rs); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) stats(q string) *Info {
	f.t.Helper()
	info, err := f.c.Stats(f.ctx, q)
	if err != nil {
		f.t.Fatal(err)
	}
	return info
}

func (f *fixture) server() *httptest.Server {
	srv := httptest.NewServer(NewAPI(f.c, APIConfig{}).Handler())
	f.t.Cleanup(srv.Close)
	return srv
}

func httptestServer(t *testing.T, a *API) string {
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// post sends a JSON body and returns the status, headers and body.
func post(t *testing.T, url, body string) (int, http.Header, []byte) {
	t.Helper()
	return doRaw(t, "POST", url, body)
}

// doRaw sends a request with a JSON body and returns the status, headers
// and body.
func doRaw(t *testing.T, method, url, body string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}
