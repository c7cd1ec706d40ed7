package registry

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/internal/adminclient"
	"github.com/plexushq/plexus/problem"
	"github.com/plexushq/plexus/telemetry"
)

// ClientConfig configures a Client. The zero value works.
type ClientConfig struct {
	// HTTPClient sends the requests. Default: a client with its own
	// transport (closed by Close) and no overall timeout, since watches are
	// long-lived; each call is bounded by Timeout instead.
	HTTPClient *http.Client
	// Timeout bounds each call except Watch. Default 10s.
	Timeout time.Duration
	// TracerProvider records a client span per call. Nil: no spans; the
	// trace context of the caller's ctx is sent (traceparent) either way.
	TracerProvider trace.TracerProvider
}

// Client talks to the registry through a node's admin API with the admin
// token. It is safe for concurrent use.
type Client struct {
	conn    adminclient.Conn
	own     *http.Transport
	timeout time.Duration
	tracer  trace.Tracer
}

// NewClient returns a client of the admin API at baseURL (e.g.
// "http://127.0.0.1:3100") using token.
func NewClient(baseURL, token string, cfg ClientConfig) (*Client, error) {
	base, err := adminclient.BaseURL(baseURL)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	c := &Client{conn: adminclient.Conn{Base: base, Token: token, HTTP: cfg.HTTPClient, Inject: telemetry.InjectHTTP},
		timeout: cfg.Timeout}
	if c.timeout <= 0 {
		c.timeout = 10 * time.Second
	}
	tp := cfg.TracerProvider
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	c.tracer = tp.Tracer(tracerName)
	if c.conn.HTTP == nil {
		c.own = http.DefaultTransport.(*http.Transport).Clone()
		c.conn.HTTP = &http.Client{Transport: c.own}
	}
	return c, nil
}

// Close releases the idle connections of the client's own transport.
func (c *Client) Close() {
	if c.own != nil {
		c.own.CloseIdleConnections()
	}
}

// ClientError is a problem answer of the admin API. It matches the
// registry's sentinels with errors.Is: 404 ErrNotFound, 400 ErrBadName
// (names) or ErrInvalid, 422 ErrInvalid, 409 ErrConflict; and the engine's:
// 503 engine.ErrUnavailable, 507 engine.ErrStorageFull. Problem.RetryAfter
// says when a retry may succeed.
type ClientError struct {
	Problem *problem.Problem
}

func (e *ClientError) Error() string {
	return fmt.Sprintf("registry: %d %s: %s", e.Problem.Status, e.Problem.Title, e.Problem.Detail)
}

// Unwrap gives the problem to errors.As.
func (e *ClientError) Unwrap() error { return e.Problem }

// Is maps the answer's status to the registry's sentinel errors.
func (e *ClientError) Is(target error) bool {
	switch e.Problem.Status {
	case http.StatusNotFound:
		return target == ErrNotFound
	case http.StatusConflict:
		return target == ErrConflict
	case http.StatusUnprocessableEntity:
		return target == ErrInvalid
	case http.StatusServiceUnavailable:
		return target == engine.ErrUnavailable
	case http.StatusInsufficientStorage:
		return target == engine.ErrStorageFull
	case http.StatusBadRequest:
		if e.Problem.Slug() == "bad-name" {
			return target == ErrBadName
		}
		return target == ErrInvalid
	}
	return false
}

// do sends one call and decodes a 2xx JSON answer into out (when not nil).
func (c *Client) do(ctx context.Context, method, path string, in, out any) (status int, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	ctx, span := c.tracer.Start(ctx, "registry "+method, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("url.path", path)))
	defer func() {
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}()
	status, err = c.conn.Do(ctx, method, path, in, out)
	if p := (*problem.Problem)(nil); errors.As(err, &p) {
		status = p.Status
	}
	return status, clientError(err, method, path)
}

// clientError turns an error answer into a *ClientError and names the
// call in a transport error.
func clientError(err error, method, path string) error {
	var p *problem.Problem
	switch {
	case err == nil:
		return nil
	case errors.As(err, &p):
		return &ClientError{Problem: p}
	}
	return fmt.Errorf("registry: %s %s: %w", method, path, err)
}

func instancePath(service, id string) string {
	return "/v1/services/" + url.PathEscape(service) + "/instances/" + url.PathEscape(id)
}

// Register registers (or replaces) an instance; created is true when it
// was new.
func (c *Client) Register(ctx context.Context, service, id string, reg Registration) (inst *Instance, created bool, err error) {
	inst = &Instance{}
	status, err := c.do(ctx, http.MethodPut, instancePath(service, id), reg, inst)
	if err != nil {
		return nil, false, err
	}
	return inst, status == http.StatusCreated, nil
}

// Heartbeat renews the lease and returns its new end. ErrNotFound means
// the lease had ended: register again.
func (c *Client) Heartbeat(ctx context.Context, service, id string) (time.Time, error) {
	var ans HeartbeatAnswer
	_, err := c.do(ctx, http.MethodPut, instancePath(service, id)+"/heartbeat", nil, &ans)
	return ans.ExpiresAt, err
}

// SetStatus sets an instance draining or healthy.
func (c *Client) SetStatus(ctx context.Context, service, id string, status Status) (*Instance, error) {
	inst := &Instance{}
	if _, err := c.do(ctx, http.MethodPut, instancePath(service, id)+"/status", statusRequest{Status: status}, inst); err != nil {
		return nil, err
	}
	return inst, nil
}

// Deregister removes an instance; ErrNotFound when it is not registered.
func (c *Client) Deregister(ctx context.Context, service, id string) error {
	_, err := c.do(ctx, http.MethodDelete, instancePath(service, id), nil, nil)
	return err
}

// List returns every service with its counts.
func (c *Client) List(ctx context.Context) ([]ServiceSummary, error) {
	var out []ServiceSummary
	_, err := c.do(ctx, http.MethodGet, "/v1/services", nil, &out)
	return out, err
}

// Get returns a service's instances; ErrNotFound when it has none.
func (c *Client) Get(ctx context.Context, service string) (*ServiceInfo, error) {
	var out ServiceInfo
	if _, err := c.do(ctx, http.MethodGet, "/v1/services/"+url.PathEscape(service), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// WatchStream is an open GET /v1/watch stream.
type WatchStream struct {
	body     io.ReadCloser
	rd       *bufio.Reader
	snapshot []*Instance
	heard    atomic.Int64 // unix nanos of the last line from the node
}

// maxSSELine bounds one line of the stream (the snapshot is one line).
const maxSSELine = 64 << 20

// Watch opens the change feed of service (every service when "") and
// reads its snapshot. The stream lives until ctx ends or Close.
func (c *Client) Watch(ctx context.Context, service string) (*WatchStream, error) {
	path := "/v1/watch"
	if service != "" {
		path += "?service=" + url.QueryEscape(service)
	}
	resp, err := c.conn.Send(ctx, http.MethodGet, path, nil, http.Header{"Accept": {"text/event-stream"}})
	if err != nil {
		return nil, clientError(err, http.MethodGet, path)
	}
	ws := &WatchStream{body: resp.Body, rd: bufio.NewReaderSize(resp.Body, 64<<10)}
	name, data, err := ws.read()
	if err == nil && name != "snapshot" {
		err = fmt.Errorf("registry: watch: first event is %q, want snapshot", name)
	}
	var snap Snapshot
	if err == nil {
		err = json.Unmarshal(data, &snap)
	}
	if err != nil {
		ws.Close()
		return nil, err
	}
	ws.snapshot = snap.Instances
	return ws, nil
}

// Snapshot is the list of live instances when the stream opened.
func (ws *WatchStream) Snapshot() []*Instance { return ws.snapshot }

// Next returns the next put or delete event. ctx must be the one given to
// Watch (or end with it): the read is ended by closing the stream.
func (ws *WatchStream) Next(ctx context.Context) (Event, error) {
	for {
		if err := ctx.Err(); err != nil {
			return Event{}, err
		}
		name, data, err := ws.read()
		if err != nil {
			return Event{}, err
		}
		if name != string(EventPut) && name != string(EventDelete) {
			continue // unknown events are for newer clients
		}
		var ev Event
		if err := json.Unmarshal(data, &ev); err != nil {
			return Event{}, fmt.Errorf("registry: watch: bad %s event: %w", name, err)
		}
		if ev.Type == EventPut && ev.Instance == nil {
			return Event{}, fmt.Errorf("registry: watch: put event without instance")
		}
		return ev, nil
	}
}

// Pending reports whether buffered data is waiting (used to batch).
func (ws *WatchStream) Pending() bool { return false }

// FreshAt is when the node last sent anything (an event or the stream's
// heartbeat): the node's own watch proves itself current, so the stream
// was current then.
func (ws *WatchStream) FreshAt() time.Time { return time.Unix(0, ws.heard.Load()) }

// Close ends the stream.
func (ws *WatchStream) Close() error { return ws.body.Close() }

// Stop is Close, so a WatchStream can feed a Cache.
func (ws *WatchStream) Stop() error { return ws.Close() }

// read returns the next event's name and data, skipping comments.
func (ws *WatchStream) read() (string, []byte, error) {
	var name string
	var data []byte
	for {
		line, err := ws.line()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return "", nil, fmt.Errorf("registry: watch stream: %w", err)
		}
		switch {
		case len(line) == 0:
			if name != "" || data != nil {
				if name == "" {
					name = "message"
				}
				return name, data, nil
			}
		case line[0] == ':':
		case bytes.HasPrefix(line, []byte("event:")):
			name = string(bytes.TrimSpace(line[len("event:"):]))
		case bytes.HasPrefix(line, []byte("data:")):
			d := bytes.TrimPrefix(line[len("data:"):], []byte(" "))
			if data != nil {
				data = append(data, '\n')
			}
			data = append(data, d...)
		}
	}
}

// line reads one line without its end, bounded by maxSSELine.
func (ws *WatchStream) line() ([]byte, error) {
	var buf []byte
	for {
		chunk, err := ws.rd.ReadSlice('\n')
		if len(buf)+len(chunk) > maxSSELine {
			return nil, errors.New("line too long")
		}
		if err == bufio.ErrBufferFull {
			buf = append(buf, chunk...)
			continue
		}
		if err != nil {
			return nil, err
		}
		ws.heard.Store(time.Now().UnixNano())
		buf = append(buf, chunk...)
		return bytes.TrimRight(buf, "\r\n"), nil
	}
}

// NewHTTPCache returns a cache fed by the admin API's GET /v1/watch
// stream, for programs outside a node. It reconnects with backoff and
// rebuilds from each new snapshot. Start it before use.
func NewHTTPCache(c *Client, cfg CacheConfig) *Cache {
	return newCache(cfg, func(ctx context.Context) (cacheStream, []*Instance, error) {
		ws, err := c.Watch(ctx, "")
		if err != nil {
			return nil, nil, err
		}
		return ws, ws.Snapshot(), nil
	})
}
