package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plexushq/plexus/internal/nodetest"

	"go.opentelemetry.io/otel/trace"

	"github.com/plexushq/plexus/queue"
	"github.com/plexushq/plexus/server"
	"github.com/plexushq/plexus/service"
	"github.com/plexushq/plexus/telemetry"
)

// startFullNode runs every role (gateway, control, checker) on loopback.
func startFullNode(t *testing.T) *server.Node {
	t.Helper()
	return nodetest.Start(t, server.Config{AdminToken: token})
}

func adminDo(t *testing.T, method, url string, body any, out any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, url, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %s", method, url, resp.Status)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
}

// startService runs a service with service.New so the handler can use its
// client and tracer; it returns once the instance serves and is registered.
func startService(t *testing.T, admin, name string, handler func(s *service.Service) http.Handler) *service.Service {
	t.Helper()
	ready := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	s, err := service.New(ctx, service.Config{Name: name, ID: name + "-1", Addr: "127.0.0.1:0", RegistryURL: admin,
		Token: token, DrainDelay: time.Millisecond, Logger: quiet, OnReady: func(u string) { ready <- u }})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, handler(s)) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("%s: %v", name, err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s stopped with %v", name, err)
		}
	})
	return s
}

// TestEndToEndTrace: a request through the gateway to service A, which
// calls service B with the client, which publishes a queue message consumed
// by C: one trace id across all, with correct parent links, visible through
// GET /v1/traces/{id}.
func TestEndToEndTrace(t *testing.T) {
	n := startFullNode(t)
	admin := "http://" + n.AdminAddr()
	adminDo(t, "PUT", admin+"/v1/queues/jobs", map[string]any{}, nil)

	// C: a consumer with its own tracer provider exporting to the node.
	telC, err := telemetry.Setup(context.Background(), telemetry.Config{ServiceName: "svc-c", Endpoint: admin,
		Headers: map[string]string{"Authorization": "Bearer " + token}})
	if err != nil {
		t.Fatal(err)
	}
	qC, err := queue.New(context.Background(), n.Engine().JetStream(), queue.Options{TracerProvider: telC.TracerProvider(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	consumed := make(chan trace.SpanContext, 1)
	sub, err := qC.Subscribe(context.Background(), "jobs", func(ctx context.Context, d *queue.Delivery) error {
		consumed <- trace.SpanContextFromContext(ctx)
		return nil
	}, queue.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// B publishes to the queue within its request's trace.
	var qB *queue.Broker
	startService(t, admin, "svc-b", func(s *service.Service) http.Handler {
		qB, err = queue.New(context.Background(), n.Engine().JetStream(), queue.Options{TracerProvider: s.Config().TracerProvider, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, err := qB.Publish(r.Context(), "jobs", queue.Message{Payload: []byte(`{"job":1}`)}); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.WriteHeader(http.StatusAccepted)
		})
	})
	// A calls B through the service client.
	startService(t, admin, "svc-a", func(s *service.Service) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, err := s.Client().Call(r.Context(), "svc-b", "POST", "/work", []byte(`{}`)); err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			w.WriteHeader(http.StatusOK)
		})
	})
	waitRouted(t, "http://"+n.GatewayAddr()+"/api/svc-a/health")

	traceID := trace.TraceID{0xaa, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	callerSpan := trace.SpanID{0xbb, 1, 2, 3, 4, 5, 6, 7}
	req, _ := http.NewRequest("GET", "http://"+n.GatewayAddr()+"/api/svc-a/order", nil)
	req.Header.Set("traceparent", fmt.Sprintf("00-%s-%s-01", traceID, callerSpan))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("gateway → A → B: %s", resp.Status)
	}
	select {
	case sc := <-consumed:
		if sc.TraceID() != traceID {
			t.Fatalf("consumer ran in trace %s, want %s", sc.TraceID(), traceID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("C never consumed the message")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = sub.Stop(ctx)
	qC.Close()
	_ = telC.Shutdown(ctx) // flushes C's spans to the node

	checkTrace(t, admin, traceID.String(), callerSpan.String())
	qB.Close()
}

// waitRouted waits until the gateway routes to the service (its registry
// cache saw the registration).
func waitRouted(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway never routed %s", url)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkTrace polls the node until every span of the chain arrived (A and B
// export in batches), then checks each parent link.
func checkTrace(t *testing.T, admin, id, callerSpan string) {
	t.Helper()
	type hop struct{ service, kind string }
	deadline := time.Now().Add(10 * time.Second)
	for {
		var d telemetry.TraceDetail
		req, _ := http.NewRequest("GET", admin+"/v1/traces/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&d)
			resp.Body.Close()
		}
		// The gateway records a server span and a client span per upstream try.
		chain := []hop{{"plexus", "server"}, {"plexus", "client"}, {"svc-a", "server"}, {"svc-a", "client"},
			{"svc-b", "server"}, {"svc-b", "producer"}, {"svc-c", "consumer"}}
		last := len(chain) - 1
		found := make([]*telemetry.Span, len(chain))
		for i := range d.Spans {
			for j, h := range chain {
				if d.Spans[i].Service == h.service && d.Spans[i].Kind == h.kind && found[j] == nil {
					found[j] = &d.Spans[i]
				}
			}
		}
		missing := -1
		for j := range found {
			if found[j] == nil {
				missing = j
				break
			}
		}
		if missing < 0 {
			parent := callerSpan
			for j, s := range found {
				if s.ParentSpanID != parent {
					t.Fatalf("hop %d (%s %s %q) has parent %s, want %s", j, s.Service, s.Kind, s.Name, s.ParentSpanID, parent)
				}
				parent = s.SpanID
			}
			if l := found[last].Links; len(l) != 1 || l[0].SpanID != found[last-1].SpanID {
				t.Fatalf("consumer span should link to the producer: %+v", l)
			}
			t.Logf("trace %s: %d spans across gateway, A, B, queue and C", id, len(d.Spans))
			return
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(d.Spans, "", " ")
			t.Fatalf("trace %s lacks %v; has %s", id, chain[missing], b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestDrainThroughGateway: the same drain as
// TestDrainAndDeregisterWithoutFailedRequests, with the load going through
// the gateway instead of the client.
func TestDrainThroughGateway(t *testing.T) {
	n := startFullNode(t)
	admin := "http://" + n.AdminAddr()
	a := runInstance(t, admin, "echo-a")
	b := runInstance(t, admin, "echo-b")
	url := "http://" + n.GatewayAddr() + "/api/echo/work"
	waitRouted(t, url)
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	defer hc.CloseIdleConnections()

	var calls, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				calls.Add(1)
				resp, err := hc.Get(url)
				if err != nil {
					failed.Add(1)
					t.Errorf("through the gateway: %v", err)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
					t.Errorf("through the gateway: %s", resp.Status)
				}
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	a.cancel()
	if err := <-a.done; err != nil {
		t.Fatalf("drain: %v", err)
	}
	aHits := a.hits.Load()
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || a.hits.Load() != aHits || b.hits.Load() == 0 {
		t.Fatalf("%d of %d requests failed; a served %d (+%d after stopping), b %d", failed.Load(), calls.Load(), aHits,
			a.hits.Load()-aHits, b.hits.Load())
	}
	t.Logf("%d requests through the gateway while draining, none failed (a %d, b %d)", calls.Load(), aHits, b.hits.Load())
}
