package gateway

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/plexushq/plexus/internal/httpguard"
)

// benchBackend answers 13 bytes with a Content-Length, like the bench's backend.
func benchBackend(b *testing.B) *httptest.Server {
	body := []byte("Hello, World!")
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(body)
	}))
	b.Cleanup(s.Close)
	return s
}

func benchGateway(b *testing.B, cfg Config, opts Options) *Gateway {
	if opts.Discovery == nil {
		disc := newDiscovery()
		disc.set("svc", benchBackend(b).URL)
		opts.Discovery = disc
	}
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	g, err := New(cfg, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = g.Stop(b.Context()) })
	return g
}

// featuresOn is the benchmark's configuration: P2C, breakers, a rate
// limit too high to trigger, metrics and a file access log.
func featuresOn(b *testing.B) (Config, Options) {
	return Config{Strategy: "p2c", AccessLog: filepath.Join(b.TempDir(), "access.log"),
			RateLimit: &RateLimitConfig{Requests: 1 << 30, Per: time.Second, Key: "ip"}},
		Options{Metrics: prometheus.NewRegistry()}
}

// BenchmarkProxyLoopback is a whole proxied GET: client → gateway listener
// (on each transport) → backend, all on loopback, one request at a time.
func BenchmarkProxyLoopback(b *testing.B) {
	for _, tr := range []string{transportStd, transportH1} {
		for _, tc := range []struct {
			name     string
			features bool
		}{{"minimal", false}, {"features", true}} {
			b.Run(tr+"/"+tc.name, func(b *testing.B) {
				var cfg Config
				var opts Options
				if tc.features {
					cfg, opts = featuresOn(b)
				}
				g := benchGateway(b, cfg, opts)
				url := listen(b, g, tr, httpguard.Limits{})
				tr := &http.Transport{MaxIdleConnsPerHost: 8}
				b.Cleanup(tr.CloseIdleConnections)
				c := &http.Client{Transport: tr}
				req, _ := http.NewRequest("GET", url+"/api/svc/hello?x=1", nil)
				b.ReportAllocs()
				for b.Loop() {
					resp, err := c.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Fatal(resp.StatusCode)
					}
				}
			})
		}
	}
}

// discardWriter is a minimal ResponseWriter, so the benchmark counts the
// gateway's own allocations, not a recorder's.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(s int)           { w.status = s }

// The deadlines a real connection takes (net/http's ResponseController
// finds these methods).
func (w *discardWriter) SetWriteDeadline(time.Time) error { return nil }
func (w *discardWriter) SetReadDeadline(time.Time) error  { return nil }

// rawBackend is a loopback upstream that answers every request with the
// same 13 bytes from a canned buffer, allocating nothing per request, so
// that allocations counted around it are the gateway's own.
func rawBackend(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	answer := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!")
	var wg sync.WaitGroup
	serve := func(c net.Conn) {
		defer wg.Done()
		defer c.Close()
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return
			}
			if len(line) <= 2 { // the end of a head (GETs: no body)
				if _, err := c.Write(answer); err != nil {
					return
				}
			}
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go serve(c)
		}
	}()
	b.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	return "http://" + ln.Addr().String()
}

// BenchmarkServeHTTP calls the handler directly, in parallel, with the
// features on, against rawBackend: allocs/op is what the gateway itself
// allocates per proxied request (the regression number of
// docs/BENCHMARKS.md).
func BenchmarkServeHTTP(b *testing.B) {
	cfg, opts := featuresOn(b)
	disc := newDiscovery()
	disc.set("svc", rawBackend(b))
	opts.Discovery = disc
	g := benchGateway(b, cfg, opts)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest("GET", "/api/svc/hello?x=1", nil)
		req.RemoteAddr = "127.0.0.1:5555"
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			clear(w.h)
			g.ServeHTTP(w, req)
			if w.status != 200 {
				b.Fatal(w.status)
			}
		}
	})
}

// BenchmarkProxyLoopbackParallel is BenchmarkProxyLoopback with 32
// concurrent clients and the features on: ns/op is the inverse of
// throughput on this machine.
func BenchmarkProxyLoopbackParallel(b *testing.B) {
	cfg, opts := featuresOn(b)
	g := benchGateway(b, cfg, opts)
	srv := httptest.NewServer(g)
	b.Cleanup(srv.Close)
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	b.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr}
	url := srv.URL + "/api/svc/hello"
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}
