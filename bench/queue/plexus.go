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
	"github.com/plexushq/plexus/internal/httpguard"
	"github.com/plexushq/plexus/queue"
)

// plexusSystems runs Plexus's queue on the shared engine: the Go SDK
// (queue.Broker in process) and the HTTP API (queue.API's handler on a
// loopback listener served as plexus up's admin listener serves it,
// driven by JSON batches).
type plexusSystems struct {
	c        *queue.Broker
	shutdown func(context.Context) error
	url      string
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
	h := queue.NewAPI(c, queue.APIConfig{}).Handler()
	p := &plexusSystems{c: c, url: "http://" + ln.Addr().String()}
	switch o.server {
	case "h1":
		srv := httpguard.NewH1Server(h, httpguard.Limits{}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
		go func() { _ = srv.Serve(ln) }()
		p.shutdown = srv.Shutdown
	case "net/http":
		srv := httpguard.NewServer(h, httpguard.Limits{})
		go func() { _ = srv.Serve(ln) }()
		p.shutdown = srv.Shutdown
	default:
		_ = ln.Close()
		return nil, fmt.Errorf("-server %q: want h1 or net/http", o.server)
	}
	return p, nil
}

func (p *plexusSystems) brokers() []broker {
	return []broker{&sdkBroker{c: p.c}, &httpBroker{c: p.c, url: p.url,
		hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}}}
}

func (p *plexusSystems) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = p.shutdown(ctx)
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
// long polls of up to 64 that acknowledge the previous batch ("ack"). It
// is written as a careful user would: net/http and encoding/json on typed
// structs, one encode buffer per producer or consumer, answers decoded
// once (the payload straight into the consumer's type, here a string).
type httpBroker struct {
	c   *queue.Broker
	url string
	hc  *http.Client
}

func (b *httpBroker) Name() string                    { return "Plexus HTTP" }
func (b *httpBroker) Reset(ctx context.Context) error { return resetQueue(ctx, b.c, httpQueue) }
func (b *httpBroker) Close()                          {}

// poster sends JSON bodies from one reused buffer and reads answers into
// another.
type poster struct {
	b        *httpBroker
	buf, ans bytes.Buffer
	enc      *json.Encoder
}

func newPoster(b *httpBroker) *poster {
	p := &poster{b: b}
	p.enc = json.NewEncoder(&p.buf)
	return p
}

func (p *poster) post(ctx context.Context, path string, in, out any) error {
	p.buf.Reset()
	if err := p.enc.Encode(in); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.b.url+"/v1/queues/"+httpQueue+path, bytes.NewReader(p.buf.Bytes()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.b.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		rb, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("POST %s: %s: %s", path, resp.Status, rb)
	}
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	p.ans.Reset()
	if _, err := p.ans.ReadFrom(resp.Body); err != nil {
		return err
	}
	return json.Unmarshal(p.ans.Bytes(), out)
}

// toJSON turns a benchmark payload into a JSON string of the same size:
// its 16 header bytes in hex, then the filler.
func toJSON(p []byte) string {
	var b strings.Builder
	b.Grow(len(p))
	b.WriteString(hex.EncodeToString(p[:16]))
	for b.Len() < len(p)-2 {
		b.WriteByte('x')
	}
	return b.String()
}

func fromJSON(s string) []byte {
	if len(s) < 32 {
		return nil
	}
	h, err := hex.DecodeString(s[:32])
	if err != nil {
		return nil
	}
	return h
}

// publishItem and publishBatch are the publish bodies this client sends.
type publishItem struct {
	Payload string `json:"payload"`
}

type publishBatch struct {
	Messages []publishItem `json:"messages"`
}

type httpProducer struct {
	p     *poster
	batch publishBatch
}

func (b *httpBroker) NewProducer(ctx context.Context) (producer, error) {
	return &httpProducer{p: newPoster(b)}, nil
}

func (p *httpProducer) PublishBatch(ctx context.Context, payloads [][]byte) error {
	if len(payloads) == 1 {
		return p.p.post(ctx, "/messages", publishItem{Payload: toJSON(payloads[0])}, nil)
	}
	p.batch.Messages = p.batch.Messages[:0]
	for _, m := range payloads {
		p.batch.Messages = append(p.batch.Messages, publishItem{Payload: toJSON(m)})
	}
	return p.p.post(ctx, "/messages", &p.batch, nil)
}

func (p *httpProducer) Close() {}

// receiveRequest and received are a receive's body and answer.
type receiveRequest struct {
	Max      int      `json:"max"`
	Wait     string   `json:"wait"`
	Consumer string   `json:"consumer"`
	Ack      []string `json:"ack,omitempty"`
}

type received struct {
	Messages []struct {
		Payload string `json:"payload"`
		Receipt string `json:"receipt"`
	} `json:"messages"`
}

func (b *httpBroker) Consume(ctx context.Context, n int, handle func([]byte)) (func(), error) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := newPoster(b)
			// Ack carries the previous batch's receipts, acknowledged in the
			// same round trip as the next receive.
			req := receiveRequest{Max: 64, Wait: "1s", Consumer: fmt.Sprintf("c%d", i)}
			var out received
			for ctx.Err() == nil {
				out.Messages = out.Messages[:0]
				if err := p.post(ctx, "/receive", &req, &out); err != nil {
					continue
				}
				req.Ack = req.Ack[:0]
				for _, m := range out.Messages {
					handle(fromJSON(m.Payload))
					req.Ack = append(req.Ack, m.Receipt)
				}
			}
			if len(req.Ack) > 0 {
				actx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_ = p.post(actx, "/ack", map[string]any{"receipts": req.Ack}, nil)
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
