package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/plexushq/plexus/bench/internal/benchutil"
	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/queue"
)

// plexusSystems runs Plexus's queue on the shared engine: the Go SDK
// (queue.Broker in process) and the HTTP API (queue.API's handler on a
// loopback listener, driven by JSON batches).
type plexusSystems struct {
	c   *queue.Broker
	srv *http.Server
	url string
}

func startPlexus(ctx context.Context, ps *benchutil.Procs, eng *engine.Engine, o options) (*plexusSystems, error) {
	c, err := queue.New(ctx, eng.JetStream(), queue.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Replicas: eng.Replicas()})
	if err != nil {
		return nil, err
	}
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: queue.NewAPI(c, queue.APIConfig{}).Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return &plexusSystems{c: c, srv: srv, url: "http://" + ln.Addr().String()}, nil
}

func (p *plexusSystems) brokers() []broker {
	return []broker{&sdkBroker{c: p.c}, &httpBroker{c: p.c, url: p.url,
		hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}}}
}

func (p *plexusSystems) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = p.srv.Shutdown(ctx)
	_ = p.c.Stop(ctx)
}

// queueConfig leaves room for the whole run (the default maxSize is 1000).
var queueConfig = queue.Config{MaxSize: 10_000_000, Overflow: queue.OverflowReject}

func resetQueue(ctx context.Context, c *queue.Broker, name string) error {
	_ = c.DeleteQueue(ctx, name)
	_ = c.DeleteQueue(ctx, name+".dlq")
	_, _, err := c.CreateQueue(ctx, name, queueConfig)
	return err
}

// sdkBroker is the Go SDK: PublishBatch (pipelined, one wait) and
// Subscribe handlers that ack by returning nil.
type sdkBroker struct{ c *queue.Broker }

const sdkQueue, httpQueue = "bench-sdk", "bench-http"

func (b *sdkBroker) Name() string                    { return "Plexus SDK" }
func (b *sdkBroker) Reset(ctx context.Context) error { return resetQueue(ctx, b.c, sdkQueue) }
func (b *sdkBroker) Close()                          {}

type sdkProducer struct{ c *queue.Broker }

func (b *sdkBroker) NewProducer(ctx context.Context) (producer, error) {
	return &sdkProducer{c: b.c}, nil
}

func (p *sdkProducer) PublishBatch(ctx context.Context, payloads [][]byte) error {
	msgs := make([]queue.Message, len(payloads))
	for i, m := range payloads {
		msgs[i] = queue.Message{Payload: m}
	}
	_, err := p.c.PublishBatch(ctx, sdkQueue, msgs)
	return err
}

func (p *sdkProducer) Close() {}

func (b *sdkBroker) Consume(ctx context.Context, n int, handle func([]byte)) (func(), error) {
	var subs []*queue.Subscription
	for i := range n {
		s, err := b.c.Subscribe(ctx, sdkQueue, func(ctx context.Context, d *queue.Delivery) error {
			handle(d.Payload)
			return nil
		}, queue.SubscribeOptions{Concurrency: 1, Prefetch: 64, Name: fmt.Sprintf("c%d", i)})
		if err != nil {
			return nil, err
		}
		subs = append(subs, s)
	}
	return func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, s := range subs {
			_ = s.Stop(sctx)
		}
	}, nil
}

// httpBroker is the HTTP API: JSON batches of messages per POST, receive
// long polls of up to 64 that acknowledge the previous batch ("ack").
type httpBroker struct {
	c   *queue.Broker
	url string
	hc  *http.Client
}

func (b *httpBroker) Name() string                    { return "Plexus HTTP" }
func (b *httpBroker) Reset(ctx context.Context) error { return resetQueue(ctx, b.c, httpQueue) }
func (b *httpBroker) Close()                          {}

func (b *httpBroker) post(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.url+"/v1/queues/"+httpQueue+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s: %s", path, resp.Status, rb)
	}
	if out != nil {
		return json.Unmarshal(rb, out)
	}
	return nil
}

// toJSON turns a benchmark payload into a JSON string of the same size:
// its 16 header bytes in hex, then the filler.
func toJSON(p []byte) json.RawMessage {
	var b strings.Builder
	b.WriteByte('"')
	b.WriteString(hex.EncodeToString(p[:16]))
	for b.Len() < len(p)-1 {
		b.WriteByte('x')
	}
	b.WriteByte('"')
	return json.RawMessage(b.String())
}

func fromJSON(raw json.RawMessage) []byte {
	var s string
	if json.Unmarshal(raw, &s) != nil || len(s) < 32 {
		return nil
	}
	h, err := hex.DecodeString(s[:32])
	if err != nil {
		return nil
	}
	return h
}

type httpProducer struct{ b *httpBroker }

func (b *httpBroker) NewProducer(ctx context.Context) (producer, error) {
	return &httpProducer{b: b}, nil
}

func (p *httpProducer) PublishBatch(ctx context.Context, payloads [][]byte) error {
	type item struct {
		Payload json.RawMessage `json:"payload"`
	}
	if len(payloads) == 1 {
		return p.b.post(ctx, "/messages", item{Payload: toJSON(payloads[0])}, nil)
	}
	items := make([]item, len(payloads))
	for i, m := range payloads {
		items[i] = item{Payload: toJSON(m)}
	}
	return p.b.post(ctx, "/messages", map[string]any{"messages": items}, nil)
}

func (p *httpProducer) Close() {}

func (b *httpBroker) Consume(ctx context.Context, n int, handle func([]byte)) (func(), error) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var done []string // acknowledged with the next receive, in the same round trip
			for ctx.Err() == nil {
				var out struct {
					Messages []struct {
						Payload json.RawMessage `json:"payload"`
						Receipt string          `json:"receipt"`
					} `json:"messages"`
				}
				req := map[string]any{"max": 64, "wait": "1s", "consumer": fmt.Sprintf("c%d", i)}
				if len(done) > 0 {
					req["ack"] = done
				}
				if err := b.post(ctx, "/receive", req, &out); err != nil {
					continue
				}
				done = make([]string, len(out.Messages))
				for j, m := range out.Messages {
					handle(fromJSON(m.Payload))
					done[j] = m.Receipt
				}
			}
			if len(done) > 0 {
				actx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_ = b.post(actx, "/ack", map[string]any{"receipts": done}, nil)
				cancel()
			}
		}()
	}
	return wg.Wait, nil
}

var (
	_ broker = (*sdkBroker)(nil)
	_ broker = (*httpBroker)(nil)
)
