// Package adminclient is the shared core of the Go clients of a node's
// admin API (registry.Client, eventstore.Client, queue.Client and the
// CLI): the request (JSON body, bearer token, trace context through the
// Inject hook), the bounded read of the answer, and the problem of an
// error answer, written once.
package adminclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/plexushq/plexus/internal/httpx"
	"github.com/plexushq/plexus/problem"
)

// MaxAnswer bounds the answers read whole (lists of instances, events).
const MaxAnswer = 64 << 20

// BaseURL checks and normalizes an admin URL: http(s)://host[:port],
// without a query or fragment; a bare host:port means http://host:port.
func BaseURL(raw string) (string, error) {
	s := strings.TrimRight(strings.TrimSpace(raw), "/")
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("admin URL %q: want http://host:port, https://host:port or host:port", raw)
	}
	return s, nil
}

// Conn calls one node's admin API. The zero HTTP means a client without
// an overall timeout (streams and long polls): bound calls with ctx.
type Conn struct {
	Base  string // from BaseURL
	Token string
	HTTP  *http.Client
	// Inject writes ctx's trace context into a request's headers: the
	// clients pass telemetry.InjectHTTP (this package sits below
	// telemetry). Nil: none.
	Inject func(ctx context.Context, h http.Header)
}

func (c *Conn) client() *http.Client {
	if c.HTTP == nil {
		return http.DefaultClient
	}
	return c.HTTP
}

// Send sends one request (in, when not nil, as its JSON body) with the
// token and ctx's trace context. A 2xx answer is returned for the caller to
// read and close; any other is read, closed and returned as a
// *problem.Problem. Transport errors are returned as they are.
func (c *Conn) Send(ctx context.Context, method, path string, in any, header http.Header) (*http.Response, error) {
	req, err := httpx.NewJSONRequest(ctx, method, c.Base+path, c.Token, in)
	if err != nil {
		return nil, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if c.Inject != nil {
		c.Inject(ctx, req.Header)
	}
	resp, err := c.client().Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		p := problem.Of(resp.StatusCode, data)
		if p.RetryAfter == 0 { // a proxy's answer: the hint in the header only
			p.RetryAfter, _ = strconv.Atoi(resp.Header.Get("Retry-After"))
		}
		return nil, p
	}
	return resp, nil
}

// Do is Send with the answer read whole and decoded into out (when not
// nil and the answer has a body). It returns the answer's status.
func (c *Conn) Do(ctx context.Context, method, path string, in, out any) (int, error) {
	resp, err := c.Send(ctx, method, path, in, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswer))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// Error is an error answer of the admin API that matches one of a
// package's sentinel errors (Kind) and carries the problem. Its text is
// the server's detail, which already names the thing and the cause, so it
// is said once.
type Error struct {
	Kind    error
	Problem *problem.Problem
}

func (e *Error) Error() string {
	d := e.Problem.Error()
	if e.Kind == nil || strings.HasPrefix(d, e.Kind.Error()) {
		return d
	}
	return e.Kind.Error() + ": " + d
}

// Unwrap gives the sentinel and the problem to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	if e.Kind == nil {
		return []error{e.Problem}
	}
	return []error{e.Kind, e.Problem}
}
