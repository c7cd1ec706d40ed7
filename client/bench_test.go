package client

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/plexushq/plexus/registry"
)

// BenchmarkOverhead compares a client call with a plain http.Client GET to
// the same loopback backend (same transport settings).
func BenchmarkOverhead(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) }))
	defer srv.Close()
	inst := &registry.Instance{ID: "a", URL: srv.URL, Weight: 1}
	d := staticDisc{"svc": {Name: "svc", Gen: 1, Instances: []*registry.Instance{inst}, Healthy: []*registry.Instance{inst}}}
	b.Run("plain-http.Client", func(b *testing.B) {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		hc := &http.Client{Transport: tr}
		defer hc.CloseIdleConnections()
		b.ReportAllocs()
		for b.Loop() {
			req, _ := http.NewRequestWithContext(context.Background(), "GET", srv.URL+"/x", nil)
			resp, err := hc.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
	})
	b.Run("client.Call", func(b *testing.B) {
		c, _ := New(d, Config{})
		defer c.CloseIdleConnections()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Call(context.Background(), "svc", "GET", "/x", nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkOverheadPaired alternates a plain http.Client request and a
// client.Call to the same backend and reports both mean latencies, so drift
// in the load of a shared machine hits both sides alike.
func BenchmarkOverheadPaired(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) }))
	defer srv.Close()
	inst := &registry.Instance{ID: "a", URL: srv.URL, Weight: 1}
	d := staticDisc{"svc": {Name: "svc", Gen: 1, Instances: []*registry.Instance{inst}, Healthy: []*registry.Instance{inst}}}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	hc := &http.Client{Transport: tr}
	defer hc.CloseIdleConnections()
	c, _ := New(d, Config{HTTPClient: &http.Client{Transport: tr}})
	var plain, viaClient time.Duration
	for b.Loop() {
		start := time.Now()
		req, _ := http.NewRequestWithContext(context.Background(), "GET", srv.URL+"/x", nil)
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		mid := time.Now()
		if _, err := c.Call(context.Background(), "svc", "GET", "/x", nil); err != nil {
			b.Fatal(err)
		}
		plain += mid.Sub(start)
		viaClient += time.Since(mid)
	}
	b.ReportMetric(float64(plain.Nanoseconds())/float64(b.N), "plain-ns/op")
	b.ReportMetric(float64(viaClient.Nanoseconds())/float64(b.N), "client-ns/op")
	b.ReportMetric(float64(viaClient)/float64(plain), "ratio")
}
