package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// wsEcho is a WebSocket backend that echoes every message.
func wsEcho(t *testing.T) *httptest.Server {
	return backend(t, func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(1 << 20)
		for {
			typ, b, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, b); err != nil {
				return
			}
		}
	})
}

func TestWebSocketThroughGateway(t *testing.T) { eachTransport(t, testWebSocketThroughGateway) }

func testWebSocketThroughGateway(t *testing.T) {
	be := wsEcho(t)
	h := startGateway(t, Config{Timeout: 200 * time.Millisecond}, Options{})
	h.disc.set("chat", be.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(h.url, "http")+"/api/chat/ws", nil)
	if err != nil {
		t.Fatalf("dial through the gateway: %v", err)
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	if resp.Header.Get("X-Request-Id") == "" {
		t.Error("101 answer lacks X-Request-ID")
	}
	msg := make([]byte, 100000)
	_, _ = rand.Read(msg)
	for i := 0; i < 3; i++ {
		if err := c.Write(ctx, websocket.MessageBinary, msg); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.Read(ctx)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("echo %d: %v (%d bytes)", i, err, len(got))
		}
		if i == 0 {
			time.Sleep(300 * time.Millisecond) // past the request timeout: tunnels are not cut by it
		}
	}
	if err := c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Errorf("close: %v", err)
	}
}

func TestSSEFlushedImmediately(t *testing.T) { eachTransport(t, testSSEFlushedImmediately) }

func testSSEFlushedImmediately(t *testing.T) {
	next := make(chan struct{})
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; i < 3; i++ {
			_, _ = io.WriteString(w, "data: event\n\n")
			w.(http.Flusher).Flush()
			select {
			case <-next:
			case <-r.Context().Done():
				return
			}
		}
	})
	h := startGateway(t, Config{Timeout: 200 * time.Millisecond}, Options{})
	h.disc.set("feed", be.URL)
	resp, err := client(t).Get(h.url + "/api/feed/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	for i := 0; i < 3; i++ {
		got := make(chan string, 1)
		go func() {
			line, _ := rd.ReadString('\n')
			_, _ = rd.ReadString('\n')
			got <- line
		}()
		select {
		case line := <-got:
			if line != "data: event\n" {
				t.Fatalf("event %d: %q", i, line)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("event %d not flushed through the gateway", i)
		}
		if i == 0 {
			time.Sleep(300 * time.Millisecond) // event streams outlive the request timeout
		}
		if i < 2 {
			next <- struct{}{}
		}
	}
}

func TestHTTP2FromClients(t *testing.T) {
	be := backend(t, echo)
	disc := newDiscovery()
	disc.set("svc", be.URL)
	g, err := New(Config{}, Options{Discovery: disc, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(g)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(func() {
		srv.Close()
		_ = g.Stop(context.Background())
	})
	c := srv.Client()
	t.Cleanup(c.CloseIdleConnections)
	body := make([]byte, 300000)
	_, _ = rand.Read(body)
	resp, got := do(t, c, mustReq(t, "POST", srv.URL+"/api/svc/up?x=1", bytes.NewReader(body)))
	if resp.ProtoMajor != 2 {
		t.Fatalf("client spoke %s, want HTTP/2", resp.Proto)
	}
	if resp.StatusCode != 200 || !bytes.Equal(got, body) || resp.Header.Get("X-Echo-URI") != "/up?x=1" {
		t.Fatalf("status %d, %d bytes, URI %q", resp.StatusCode, len(got), resp.Header.Get("X-Echo-URI"))
	}
	if p := resp.Header.Get("X-In-X-Forwarded-Proto"); p != "https" {
		t.Errorf("X-Forwarded-Proto %q, want https", p)
	}
}

func TestTracingSpanIsUpstreamParent(t *testing.T) { eachTransport(t, testTracingSpanIsUpstreamParent) }

func testTracingSpanIsUpstreamParent(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	be := backend(t, echo)
	h := startGateway(t, Config{}, Options{TracerProvider: tp})
	h.disc.set("svc", be.URL)
	req := mustReq(t, "GET", h.url+"/api/svc/x", nil)
	req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	resp, _ := do(t, client(t), req)
	got := resp.Header.Get("X-In-Traceparent")
	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans recorded, want the server span and one client span per try", len(spans))
	}
	sp, cs := spans[1], spans[0] // the client span ends first
	if sp.SpanKind != trace.SpanKindServer || cs.SpanKind != trace.SpanKindClient {
		t.Fatalf("span kinds %v, %v", sp.SpanKind, cs.SpanKind)
	}
	if sp.SpanContext.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || sp.Parent.SpanID().String() != "00f067aa0ba902b7" {
		t.Errorf("span %s parent %s: not a child of the client's span", sp.SpanContext.TraceID(), sp.Parent.SpanID())
	}
	if cs.Parent.SpanID() != sp.SpanContext.SpanID() {
		t.Errorf("try span's parent %s, want the server span %s", cs.Parent.SpanID(), sp.SpanContext.SpanID())
	}
	want := "00-4bf92f3577b34da6a3ce929d0e0e4736-" + cs.SpanContext.SpanID().String() + "-01"
	if got != want {
		t.Errorf("upstream traceparent %q, want %q(the gateway's try span as parent)", got, want)
	}
}

// Trailers pass both ways: the client's after its chunked body reach the
// upstream, the upstream's after its body reach the client; the client's
// Expect is answered by the gateway, not forwarded.
func TestTrailersAndExpectThroughGateway(t *testing.T) {
	eachTransport(t, testTrailersAndExpectThroughGateway)
}

func testTrailersAndExpectThroughGateway(t *testing.T) {
	type seen struct{ trailer, expect, body string }
	got := make(chan seen, 1)
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Trailer.Get("X-Client-Sum"), r.Header.Get("Expect"), string(b)}
		w.Header().Set("Trailer", "X-Upstream-Sum")
		_, _ = io.WriteString(w, "answer")
		w.Header().Set("X-Upstream-Sum", "7")
	})
	h := startGateway(t, Config{}, Options{})
	h.disc.set("svc", be.URL)
	pr, pw := io.Pipe()
	go func() {
		_, _ = io.WriteString(pw, "streamed body")
		_ = pw.Close()
	}()
	req := mustReq(t, "POST", h.url+"/api/svc/t", pr)
	req.Header.Set("Expect", "100-continue")
	req.Trailer = http.Header{"X-Client-Sum": []string{"13"}}
	resp, body := do(t, client(t), req)
	s := <-got
	if resp.StatusCode != 200 || string(body) != "answer" || resp.Trailer.Get("X-Upstream-Sum") != "7" {
		t.Fatalf("status %d body %q trailer %v", resp.StatusCode, body, resp.Trailer)
	}
	if s.body != "streamed body" || s.trailer != "13" || s.expect != "" {
		t.Fatalf("upstream saw %+v: want the body, the client's trailer and no Expect", s)
	}
}
