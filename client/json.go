package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// DoJSON sends in (nil: no body) as JSON and decodes a 2xx answer into out
// (nil: ignore the body). Errors are as for Call.
func (c *Client) DoJSON(ctx context.Context, service, method, path string, in, out any, opts ...CallOption) error {
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("client: encoding request for %s %s: %w", service, path, err)
		}
		body = b
		opts = append([]CallOption{WithHeader("Content-Type", "application/json")}, opts...)
	}
	opts = append([]CallOption{WithHeader("Accept", "application/json")}, opts...)
	resp, err := c.Call(ctx, service, method, path, body, opts...)
	if err != nil {
		return err
	}
	if out == nil || len(resp.Body) == 0 || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(resp.Body, out); err != nil {
		return fmt.Errorf("client: decoding answer of %s %s %s: %w", service, method, path, err)
	}
	return nil
}

// GetJSON is DoJSON with GET and no body.
func (c *Client) GetJSON(ctx context.Context, service, path string, out any, opts ...CallOption) error {
	return c.DoJSON(ctx, service, http.MethodGet, path, nil, out, opts...)
}

// PostJSON is DoJSON with POST (not retried unless Idempotent is given).
func (c *Client) PostJSON(ctx context.Context, service, path string, in, out any, opts ...CallOption) error {
	return c.DoJSON(ctx, service, http.MethodPost, path, in, out, opts...)
}

// PutJSON is DoJSON with PUT.
func (c *Client) PutJSON(ctx context.Context, service, path string, in, out any, opts ...CallOption) error {
	return c.DoJSON(ctx, service, http.MethodPut, path, in, out, opts...)
}

// DeleteJSON is DoJSON with DELETE and no body.
func (c *Client) DeleteJSON(ctx context.Context, service, path string, out any, opts ...CallOption) error {
	return c.DoJSON(ctx, service, http.MethodDelete, path, nil, out, opts...)
}
