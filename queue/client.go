package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/internal/adminclient"
	"github.com/plexushq/plexus/internal/httpx"
	"github.com/plexushq/plexus/problem"
	"github.com/plexushq/plexus/telemetry"
)

// ClientConfig configures a Client. The zero value works.
type ClientConfig struct {
	// HTTPClient sends the requests. Default: one without an overall
	// timeout, since receives long-poll; bound calls with ctx.
	HTTPClient *http.Client
}

// Client calls a node's queue API over HTTP (docs/openapi.yaml), for
// programs that know the node's admin URL and token but not its engine.
// Its methods mirror Broker's, and its errors match the same sentinels
// (ErrQueueNotFound, ErrQueueFull, ErrReceiptStale, …) and the engine's
// (engine.ErrUnavailable, engine.ErrStorageFull); errors.As finds the
// answer's *problem.Problem. It is safe for concurrent use.
type Client struct {
	conn adminclient.Conn
}

// NewClient returns a client of the admin API at baseURL (e.g.
// "http://127.0.0.1:3100", or "127.0.0.1:3100") with the admin token.
func NewClient(baseURL, token string, cfg ClientConfig) (*Client, error) {
	base, err := adminclient.BaseURL(baseURL)
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	return &Client{conn: adminclient.Conn{Base: base, Token: token, HTTP: cfg.HTTPClient, Inject: telemetry.InjectHTTP}}, nil
}

func queuePath(queue, rest string) string { return "/v1/queues/" + url.PathEscape(queue) + rest }

func (c *Client) do(ctx context.Context, method, path string, in, out any) (int, error) {
	status, err := c.conn.Do(ctx, method, path, in, out)
	return status, clientError(err)
}

// clientError maps an error answer to the queue's sentinels.
func clientError(err error) error {
	var p *problem.Problem
	if !errors.As(err, &p) {
		return err
	}
	kinds := map[string]error{
		"queue-not-found": ErrQueueNotFound, "queue-full": ErrQueueFull, "too-many-queues": ErrTooManyQueues,
		"invalid-name": ErrInvalidName, "invalid-message": ErrInvalidMessage, "invalid-queue-config": ErrInvalidConfig,
		"invalid-receipt": ErrInvalidReceipt, "receipt-expired": ErrReceiptExpired, "receipt-stale": ErrReceiptStale,
		"storage-full": engine.ErrStorageFull, "busy": ErrBusy,
	}
	kind := kinds[p.Slug()]
	if kind == nil && p.Status == http.StatusServiceUnavailable {
		kind = engine.ErrUnavailable
	}
	if kind == ErrQueueNotFound {
		q, _ := p.Extra["queue"].(string)
		return &NotFoundError{Queue: q}
	}
	return &adminclient.Error{Kind: kind, Problem: p}
}

// CreateQueue creates the queue, or updates its options when it exists
// (created reports which).
func (c *Client) CreateQueue(ctx context.Context, name string, cfg Config) (info *Info, created bool, err error) {
	info = &Info{}
	status, err := c.do(ctx, http.MethodPut, queuePath(name, ""), configRequestOf(cfg), info)
	if err != nil {
		return nil, false, err
	}
	return info, status == http.StatusCreated, nil
}

// DeleteQueue removes the queue and its messages (not its dead-letter queue).
func (c *Client) DeleteQueue(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodDelete, queuePath(name, ""), nil, nil)
	return err
}

// Stats returns a queue's options and statistics.
func (c *Client) Stats(ctx context.Context, name string) (*Info, error) {
	info := &Info{}
	if _, err := c.do(ctx, http.MethodGet, queuePath(name, ""), nil, info); err != nil {
		return nil, err
	}
	return info, nil
}

// List returns every queue with its statistics, sorted by name.
func (c *Client) List(ctx context.Context) ([]*Info, error) {
	var out []*Info
	_, err := c.do(ctx, http.MethodGet, "/v1/queues", nil, &out)
	return out, err
}

// Publish stores one message and returns its id. A Payload that is JSON
// is sent as that JSON value, any other as a JSON string.
func (c *Client) Publish(ctx context.Context, queue string, m Message) (string, error) {
	var out struct {
		ID string `json:"id"`
	}
	_, err := c.do(ctx, http.MethodPost, queuePath(queue, "/messages"), publishItemOf(m), &out)
	return out.ID, err
}

// PublishBatch stores up to 1000 messages, all or none, and returns their ids.
func (c *Client) PublishBatch(ctx context.Context, queue string, msgs []Message) ([]string, error) {
	items := make([]publishItem, len(msgs))
	for i, m := range msgs {
		items[i] = publishItemOf(m)
	}
	var out struct {
		IDs []string `json:"ids"`
	}
	_, err := c.do(ctx, http.MethodPost, queuePath(queue, "/messages"), map[string]any{"messages": items}, &out)
	return out.IDs, err
}

// Receive takes up to opts.Max messages, waiting up to opts.Wait for the
// first (opts.Stop is not sent: end the wait with ctx). Each delivery's
// Payload is its JSON value, and its Receipt settles it.
func (c *Client) Receive(ctx context.Context, queue string, opts ReceiveOptions) ([]*Delivery, error) {
	wait := httpx.Duration(opts.Wait)
	req := receiveRequest{Max: opts.Max, Wait: &wait, VisibilityTimeout: httpx.Duration(opts.VisibilityTimeout),
		Consumer: opts.Consumer}
	var out struct {
		Messages []wireMessage `json:"messages"`
	}
	if _, err := c.do(ctx, http.MethodPost, queuePath(queue, "/receive"), req, &out); err != nil {
		return nil, err
	}
	ds := make([]*Delivery, len(out.Messages))
	for i, m := range out.Messages {
		ds[i] = m.delivery(queue)
	}
	return ds, nil
}

// Ack confirms that the messages were processed; they leave the queue.
func (c *Client) Ack(ctx context.Context, queue string, receipts []string) error {
	_, err := c.do(ctx, http.MethodPost, queuePath(queue, "/ack"), receiptsRequest{Receipts: receipts}, nil)
	return err
}

// Nack reports a failed attempt with an error text; the message is retried
// after delay (0: the queue's retry delay) or dead-lettered.
func (c *Client) Nack(ctx context.Context, queue, receipt, errText string, delay time.Duration) error {
	_, err := c.do(ctx, http.MethodPost, queuePath(queue, "/nack"),
		nackRequest{Receipt: receipt, Error: errText, Delay: httpx.Duration(delay)}, nil)
	return err
}

// Extend restarts the visibility timeout of received messages; use the
// fresh receipts it returns from then on.
func (c *Client) Extend(ctx context.Context, queue string, receipts []string) ([]string, error) {
	var out struct {
		Receipts []string `json:"receipts"`
	}
	_, err := c.do(ctx, http.MethodPost, queuePath(queue, "/extend"), receiptsRequest{Receipts: receipts}, &out)
	return out.Receipts, err
}

// DeadLetters lists up to limit dead letters of queue, oldest first.
func (c *Client) DeadLetters(ctx context.Context, queue string, limit int) ([]DeadLetter, error) {
	path := queuePath(queue, "/dead-letters")
	if limit > 0 {
		path += "?limit=" + strconv.Itoa(limit)
	}
	var out struct {
		Messages []wireMessage `json:"messages"`
	}
	if _, err := c.do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	dls := make([]DeadLetter, len(out.Messages))
	for i, m := range out.Messages {
		dls[i] = m.deadLetter()
	}
	return dls, nil
}

// Redrive moves dead letters back into queue: those of ids, or all when
// ids is nil. It returns how many moved.
func (c *Client) Redrive(ctx context.Context, queue string, ids []string) (int, error) {
	var out struct {
		Redriven int `json:"redriven"`
	}
	_, err := c.do(ctx, http.MethodPost, queuePath(queue, "/dead-letters/redrive"), redriveRequest{IDs: ids}, &out)
	return out.Redriven, err
}

// PurgeDeadLetters deletes the dead letters of queue.
func (c *Client) PurgeDeadLetters(ctx context.Context, queue string) error {
	_, err := c.do(ctx, http.MethodDelete, queuePath(queue, "/dead-letters"), nil, nil)
	return err
}

// ConsumeOptions tune Client.Consume. The zero value works.
type ConsumeOptions struct {
	// Consumer names the receiver in the queue's statistics.
	Consumer string
	// Max messages per receive, 1 to 100. Default 10.
	Max int
	// Wait is each receive's long poll. Default 10s.
	Wait time.Duration
	// HandlerTimeout bounds one handler call; its context ends then (the
	// message is nacked). Default 30s.
	HandlerTimeout time.Duration
	// Logger for failed receives, acks and nacks. Default slog.Default().
	Logger *slog.Logger
}

// Consume receives from queue until ctx ends and hands each message to
// handler, one at a time: nil acks it, an error nacks it with the error's
// text (retried after the queue's delay, dead-lettered after its
// attempts). A message being handled when ctx ends is finished and
// settled. A failed receive is retried with a backoff (100ms doubling to
// 5s). It returns when ctx ends.
func (c *Client) Consume(ctx context.Context, queue string, handler Handler, opts ConsumeOptions) {
	if opts.Max <= 0 {
		opts.Max = 10
	}
	if opts.Wait <= 0 {
		opts.Wait = 10 * time.Second
	}
	if opts.HandlerTimeout <= 0 {
		opts.HandlerTimeout = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		ds, err := c.Receive(ctx, queue, ReceiveOptions{Max: opts.Max, Wait: opts.Wait, Consumer: opts.Consumer})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			opts.Logger.Warn("queue: receive failed", "queue", queue, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		for _, d := range ds {
			c.settle(ctx, queue, d, handler, opts)
		}
	}
}

// settle runs handler for d and acks or nacks it, even when ctx has ended
// meanwhile (a received message is finished, not abandoned).
func (c *Client) settle(ctx context.Context, queue string, d *Delivery, handler Handler, opts ConsumeOptions) {
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opts.HandlerTimeout)
	defer cancel()
	err := handler(hctx, d)
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer scancel()
	if err != nil {
		if nerr := c.Nack(sctx, queue, d.Receipt, err.Error(), 0); nerr != nil {
			opts.Logger.Warn("queue: nack failed; redelivered after the visibility timeout", "queue", queue, "id", d.ID, "err", nerr)
		}
		return
	}
	if aerr := c.Ack(sctx, queue, []string{d.Receipt}); aerr != nil {
		opts.Logger.Warn("queue: ack failed; the message will be delivered again", "queue", queue, "id", d.ID, "err", aerr)
	}
}

// Conversions between the API's wire types (wire.go) and the Go types.

func configRequestOf(c Config) configRequest {
	r := configRequest{MaxSize: c.MaxSize, Overflow: c.Overflow, RetryAttempts: c.RetryAttempts, RetryBackoff: c.RetryBackoff,
		TTL: httpx.Duration(c.TTL), DeadLetterQueue: c.DeadLetterQueue, VisibilityTimeout: httpx.Duration(c.VisibilityTimeout)}
	if c.RetryDelay != nil {
		d := httpx.Duration(*c.RetryDelay)
		r.RetryDelay = &d
	}
	return r
}

func publishItemOf(m Message) publishItem {
	return publishItem{Payload: wirePayload(m.Payload), Priority: m.Priority, Delay: httpx.Duration(m.Delay),
		ID: m.ID, Headers: m.Headers}
}

func (m *wireMessage) delivery(queue string) *Delivery {
	d := &Delivery{ID: m.ID, Payload: m.Payload, Priority: m.Priority, Attempts: m.Attempts, Headers: m.Headers,
		Receipt: m.Receipt, Queue: queue}
	if m.Timestamp != nil {
		d.Timestamp = *m.Timestamp
	}
	return d
}

func (m *wireMessage) deadLetter() DeadLetter {
	d := DeadLetter{ID: m.ID, Payload: m.Payload, Headers: m.Headers, Priority: m.Priority, Attempts: m.Attempts,
		OriginalQueue: m.OriginalQueue, Reason: m.DeadLetterReason, LastError: m.LastError}
	if m.DeadLetterTimestamp != nil {
		d.Timestamp = *m.DeadLetterTimestamp
	}
	return d
}
