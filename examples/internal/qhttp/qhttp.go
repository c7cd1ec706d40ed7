// Package qhttp is a small client of a Plexus node's queue HTTP API
// (/v1/queues/…) for programs that run outside the node. The queue
// package's Go SDK needs the engine (JetStream) itself; a service that
// only knows the admin URL and token uses the HTTP API, as here.
package qhttp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/plexushq/plexus/internal/httpx"
)

// Client calls the queue API at an admin URL with the admin token.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// New returns a client of the admin API at baseURL. hc nil: a client
// without an overall timeout (receives long-poll; bound calls with ctx).
func New(baseURL, token string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), token: token, hc: hc}
}

// Message is a message to publish.
type Message struct {
	ID       string            `json:"id,omitempty"`
	Payload  any               `json:"payload"`
	Priority int               `json:"priority,omitempty"`
	Headers  map[string]string `json:"headers,omitempty"`
}

// Delivery is a received message; Receipt acks or nacks it.
type Delivery struct {
	ID        string            `json:"id"`
	Payload   json.RawMessage   `json:"payload"`
	Priority  int               `json:"priority"`
	Attempts  int               `json:"attempts"`
	Timestamp time.Time         `json:"timestamp"`
	Headers   map[string]string `json:"headers"`
	Receipt   string            `json:"receipt"`
}

// StatusError is a non-2xx answer.
type StatusError struct {
	Method, Path string
	StatusCode   int
	Body         string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.Method, e.Path, e.StatusCode, e.Body)
}

// IsStatus reports whether err is a StatusError with that code.
func IsStatus(err error, code int) bool {
	var se *StatusError
	return errors.As(err, &se) && se.StatusCode == code
}

func qpath(queue, rest string) string { return "/v1/queues/" + url.PathEscape(queue) + rest }

// Ensure creates the queue with default options unless it exists; an
// existing queue's options are left as they are.
func (c *Client) Ensure(ctx context.Context, queue string) error {
	return c.EnsureWith(ctx, queue, Options{})
}

// Options are the queue options the examples set (the queue API's names;
// zero values take the node's defaults).
type Options struct {
	RetryAttempts int    `json:"retryAttempts,omitempty"`
	RetryDelay    string `json:"retryDelay,omitempty"`
	RetryBackoff  string `json:"retryBackoff,omitempty"`
}

// EnsureWith creates the queue with opts unless it exists; an existing
// queue's options are left as they are.
func (c *Client) EnsureWith(ctx context.Context, queue string, opts Options) error {
	err := c.do(ctx, http.MethodGet, qpath(queue, ""), nil, nil)
	if IsStatus(err, http.StatusNotFound) {
		return c.do(ctx, http.MethodPut, qpath(queue, ""), opts, nil)
	}
	return err
}

// Publish stores one message and answers its id.
func (c *Client) Publish(ctx context.Context, queue string, m Message) (string, error) {
	var out struct {
		ID string `json:"id"`
	}
	err := c.do(ctx, http.MethodPost, qpath(queue, "/messages"), m, &out)
	return out.ID, err
}

// Receive long-polls for up to max messages, waiting at most wait.
func (c *Client) Receive(ctx context.Context, queue, consumer string, max int, wait time.Duration) ([]Delivery, error) {
	in := map[string]any{"max": max, "wait": wait.String()}
	if consumer != "" {
		in["consumer"] = consumer
	}
	var out struct {
		Messages []Delivery `json:"messages"`
	}
	err := c.do(ctx, http.MethodPost, qpath(queue, "/receive"), in, &out)
	return out.Messages, err
}

// Ack acknowledges delivered messages by their receipts.
func (c *Client) Ack(ctx context.Context, queue string, receipts ...string) error {
	return c.do(ctx, http.MethodPost, qpath(queue, "/ack"), map[string]any{"receipts": receipts}, nil)
}

// Nack gives a message back for redelivery after the queue's retry delay,
// recording why.
func (c *Client) Nack(ctx context.Context, queue, receipt, reason string) error {
	return c.do(ctx, http.MethodPost, qpath(queue, "/nack"), map[string]any{"receipt": receipt, "error": reason}, nil)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	req, err := httpx.NewJSONRequest(ctx, method, c.base+path, c.token, in)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return &StatusError{Method: method, Path: path, StatusCode: resp.StatusCode, Body: strings.TrimSpace(string(b))}
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
