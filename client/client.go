package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/plexushq/plexus/balance"
	"github.com/plexushq/plexus/breaker"
	"github.com/plexushq/plexus/retry"
)

// Config configures a Client. The zero value works.
type Config struct {
	// Strategy picks instances. Default p2c (power of two choices, EWMA).
	Strategy balance.Strategy
	// Timeout bounds a call (all attempts and backoff) when ctx has no
	// deadline. Default 5s.
	Timeout time.Duration
	// Retry configures retries (default: 3 attempts, 20% budget).
	Retry RetryPolicy
	// Hedge configures hedged requests (default: off).
	Hedge HedgePolicy
	// Breaker configures the per-instance breakers (breaker defaults).
	Breaker breaker.Config
	// HTTPClient sends the requests. Default: a client with its own
	// transport keeping up to 64 idle connections per instance.
	HTTPClient *http.Client
	// MaxResponseBytes bounds an answer's body. Default 10 MiB.
	MaxResponseBytes int64
	// TracerProvider records a client span per attempt. Nil: none.
	TracerProvider trace.TracerProvider
	// Metrics receives plexus_client_* metrics. Nil: none.
	Metrics prometheus.Registerer
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

func (c *Config) defaults() {
	if c.Strategy == "" {
		c.Strategy = balance.P2C
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
	c.Retry.defaults()
	c.Hedge.defaults()
	if c.HTTPClient == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		c.HTTPClient = &http.Client{Transport: tr}
	}
	if c.MaxResponseBytes <= 0 {
		c.MaxResponseBytes = 10 << 20
	}
	if c.TracerProvider == nil {
		c.TracerProvider = noop.NewTracerProvider()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Client calls services by name. It is safe for concurrent use and starts
// no goroutines of its own (hedged attempts end before their call returns).
type Client struct {
	cfg      Config
	disc     Discovery
	svcs     services
	breakers *breaker.Group
	retries  *retry.Budget
	hedges   *retry.Budget
	tracer   trace.Tracer
	metrics  *metrics
}

// New returns a client discovering instances through d (a *registry.Cache).
func New(d Discovery, cfg Config) (*Client, error) {
	if d == nil {
		return nil, errors.New("client: nil Discovery")
	}
	cfg.defaults()
	if _, err := balance.New(cfg.Strategy); err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if err := cfg.Breaker.Validate(); err != nil {
		return nil, fmt.Errorf("client: breaker: %w", err)
	}
	if cfg.Hedge.Percentile < 0 || cfg.Hedge.Percentile >= 1 {
		return nil, fmt.Errorf("client: hedge percentile %v: want 0 (off) or a fraction below 1", cfg.Hedge.Percentile)
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	return &Client{
		cfg: cfg, disc: d,
		breakers: breaker.NewGroup(cfg.Breaker, 0),
		retries:  retry.NewBudget(cfg.Retry.Budget, cfg.Retry.MinPerSecond, nil),
		hedges:   retry.NewBudget(cfg.Hedge.Budget, cfg.Hedge.MinPerSecond, nil),
		tracer:   cfg.TracerProvider.Tracer("github.com/plexushq/plexus/client"),
		metrics:  m,
	}, nil
}

// Breakers lists the per-instance breakers ("service/instance").
func (c *Client) Breakers() []breaker.Info { return c.breakers.List() }

// CloseIdleConnections closes the idle connections of the HTTP client.
func (c *Client) CloseIdleConnections() { c.cfg.HTTPClient.CloseIdleConnections() }

// Response is a 2xx answer, read whole.
type Response struct {
	StatusCode int
	Header     http.Header
	Body       []byte
	// Instance is the id of the instance that answered.
	Instance string
	// Attempts made, hedges included.
	Attempts int
}

// CallOption adjusts one call.
type CallOption func(*callOptions)

type callOptions struct {
	idempotent bool
	header     http.Header
	hashKey    uint64
	attempts   int
}

// Idempotent marks a call safe to repeat, so a POST or PATCH may be retried
// and hedged like a GET. Use it only when the server deduplicates (e.g. an
// idempotency key).
func Idempotent() CallOption { return func(o *callOptions) { o.idempotent = true } }

// WithHeader adds a request header.
func WithHeader(key, value string) CallOption {
	return func(o *callOptions) {
		if o.header == nil {
			o.header = http.Header{}
		}
		o.header.Add(key, value)
	}
}

// WithHashKey sets the key for the hash strategy (sticky instance).
func WithHashKey(key string) CallOption {
	return func(o *callOptions) { o.hashKey = balance.HashString(key) }
}

// WithMaxAttempts overrides RetryPolicy.MaxAttempts for one call (1: no retry).
func WithMaxAttempts(n int) CallOption { return func(o *callOptions) { o.attempts = n } }

// request is one call in flight.
type request struct {
	service, method, path string
	body                  []byte
	opts                  callOptions
	tried                 []string // instance ids already attempted
}

// Call sends method path (with body, which may be nil) to an instance of
// service and returns its 2xx answer. A non-2xx answer is a *StatusError,
// or a *ProblemError for application/problem+json. path must start with "/".
func (c *Client) Call(ctx context.Context, service, method, path string, body []byte, opts ...CallOption) (*Response, error) {
	req := &request{service: service, method: strings.ToUpper(method), path: path, body: body}
	req.opts.attempts = c.cfg.Retry.MaxAttempts
	for _, o := range opts {
		o(&req.opts)
	}
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("client: path %q must start with /", path)
	}
	if !req.opts.idempotent {
		req.opts.idempotent = retry.Idempotent(req.method)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.Timeout)
		defer cancel()
	}
	start := time.Now()
	resp, err := c.call(ctx, req)
	c.metrics.done(c.label(service), resp, err, time.Since(start))
	return resp, err
}

func (c *Client) label(service string) string {
	if c.disc.Service(service) == nil {
		return "_unknown"
	}
	return service
}

func (c *Client) call(ctx context.Context, req *request) (*Response, error) {
	c.retries.Deposit()
	if c.hedging(req) {
		c.hedges.Deposit()
	}
	for n := 1; ; n++ {
		st, view, err := c.view(req.service)
		if err != nil {
			return nil, err
		}
		res := c.round(ctx, st, view, req, n)
		if res.final() {
			return res.answer(req)
		}
		reason := retryReason(res.status, res.err, req.opts.idempotent)
		if reason == "" || n >= req.opts.attempts {
			return res.answer(req)
		}
		delay := c.cfg.Retry.backoff(n)
		if res.status == http.StatusTooManyRequests || res.status == http.StatusServiceUnavailable {
			if ra, ok := retryAfter(res.header, time.Now()); ok {
				dl, _ := ctx.Deadline()
				if ra > c.cfg.Retry.MaxRetryAfter || time.Now().Add(ra).After(dl) {
					return res.answer(req)
				}
				delay = max(delay, ra)
			}
		}
		if !c.retries.Withdraw() {
			c.metrics.budgetExhausted(st.name, "retry")
			return res.answer(req)
		}
		c.metrics.retry(st.name, reason)
		if err := retry.Sleep(ctx, delay); err != nil {
			return res.answer(req)
		}
	}
}

func (c *Client) hedging(req *request) bool {
	return c.cfg.Hedge.Percentile > 0 && req.opts.idempotent
}

// view returns the balancing view of a service from the cache.
func (c *Client) view(service string) (*serviceState, *serviceView, error) {
	snap := c.disc.Service(service)
	if snap == nil || len(snap.Healthy) == 0 {
		return nil, nil, fmt.Errorf("service %q: %w", service, ErrNoInstances)
	}
	st := c.svcs.get(service, c.newPicker)
	return st, st.current(snap), nil
}

func (c *Client) newPicker() balance.Picker {
	p, _ := balance.New(c.cfg.Strategy) // validated in New
	return p
}

// pick chooses an instance not tried yet whose breaker admits a call,
// falling back to tried ones when no other is left.
func (c *Client) pick(st *serviceState, v *serviceView, req *request) (int, *breaker.Breaker, breaker.Ticket, error) {
	var tried, open balance.Mask
	for i, in := range v.insts {
		for _, id := range req.tried {
			if id == in.ID {
				tried = tried.With(i)
			}
		}
	}
	for _, mask := range []*balance.Mask{&tried, &open} {
		for {
			i := st.picker.Pick(v.set, req.opts.hashKey, *mask|open)
			if i < 0 {
				break
			}
			b := c.breakers.Get(st.name + "/" + v.insts[i].ID)
			t, err := b.Allow()
			if err == nil {
				return i, b, t, nil
			}
			open = open.With(i)
		}
	}
	if open != 0 {
		return -1, nil, breaker.Ticket{}, fmt.Errorf("service %q: %w: %w", st.name, ErrAllOpen, breaker.ErrOpen)
	}
	return -1, nil, breaker.Ticket{}, fmt.Errorf("service %q: %w", st.name, ErrNoInstances)
}
