package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/plexushq/plexus/breaker"
	"github.com/plexushq/plexus/retry"
	"github.com/plexushq/plexus/telemetry"
)

// ErrResponseTooLarge is returned when an answer exceeds MaxResponseBytes.
var ErrResponseTooLarge = errors.New("response body too large")

// result is the outcome of one attempt (or of a hedged round).
type result struct {
	instance string
	status   int
	header   http.Header
	body     []byte
	err      error
}

// final reports an answer that is not worth another attempt.
func (r *result) final() bool {
	return r.err == nil && !retryableStatus(r.status)
}

// retryableStatus adds 429 (honouring Retry-After) to retry's 502/503/504.
func retryableStatus(s int) bool {
	return retry.RetryableStatus(s) || s == http.StatusTooManyRequests
}

// errServerStatus is what a 5xx answer says to the instance's breaker.
var errServerStatus = errors.New("the instance answered 5xx")

// backendErr is the attempt's outcome for the instance's breaker: nil when
// it answered below 500, else the transport error or errServerStatus.
func (r *result) backendErr() error {
	switch {
	case r.err != nil:
		return r.err
	case r.status >= 500:
		return errServerStatus
	}
	return nil
}

// answer turns the result into Call's return values.
func (r *result) answer(req *request) (*Response, error) {
	if r.err != nil {
		return nil, fmt.Errorf("%s %s %s: %w", req.service, req.method, req.path, r.err)
	}
	if r.status < 200 || r.status > 299 {
		return nil, statusError(&StatusError{Service: req.service, Method: req.method, Path: req.path,
			Instance: r.instance, StatusCode: r.status, Header: r.header, Body: r.body})
	}
	return &Response{StatusCode: r.status, Header: r.header, Body: r.body, Instance: r.instance,
		Attempts: len(req.tried)}, nil
}

// round makes one attempt and, when hedging applies and the attempt is
// slower than the service's latency percentile, a second one on another
// instance; the first final answer wins and the other attempt is cancelled
// and awaited before returning.
func (c *Client) round(ctx context.Context, st *serviceState, v *serviceView, req *request, n int) result {
	i, b, t, err := c.pick(st, v, req)
	if err != nil {
		return result{err: err}
	}
	req.tried = append(req.tried, v.insts[i].ID)
	if !c.hedging(req) {
		return c.attempt(ctx, st, v, i, b, t, req, n, false)
	}
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan result, 2)
	go func() { results <- c.attempt(actx, st, v, i, b, t, req, n, false) }()
	timer := time.NewTimer(c.hedgeDelay(st))
	defer timer.Stop()
	select {
	case r := <-results:
		return r
	case <-timer.C:
	}
	j, b2, t2, err := c.pick(st, v, req)
	if err != nil || v.insts[j].ID == v.insts[i].ID {
		return <-results // no other instance to hedge on
	}
	if !c.hedges.Withdraw() {
		// The unused ticket is abandoned; breakers recover abandoned
		// half-open probes after their reset timeout.
		c.metrics.budgetExhausted(st.name, "hedge")
		return <-results
	}
	req.tried = append(req.tried, v.insts[j].ID)
	c.metrics.hedge(st.name)
	go func() { results <- c.attempt(actx, st, v, j, b2, t2, req, n, true) }()
	first := <-results
	if first.final() {
		cancel()
		<-results // the loser ends promptly once cancelled
		return first
	}
	second := <-results
	if second.final() || first.err != nil {
		return second
	}
	return first
}

// hedgeDelay is the service's latency percentile, at least MinDelay.
func (c *Client) hedgeDelay(st *serviceState) time.Duration {
	if q, ok := st.latency.quantile(c.cfg.Hedge.Percentile); ok {
		return max(q, c.cfg.Hedge.MinDelay)
	}
	return c.cfg.Hedge.MinDelay
}

// attempt sends the request to instance i of v.
func (c *Client) attempt(ctx context.Context, st *serviceState, v *serviceView, i int, b *breaker.Breaker,
	t breaker.Ticket, req *request, n int, hedge bool) result {
	inst := v.insts[i]
	url := v.bases[i] + req.path
	ctx, span := c.tracer.Start(ctx, req.method+" "+req.service, trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	recording := span.IsRecording() // skip attribute work when not sampled
	if recording {
		span.SetAttributes(attribute.String("http.request.method", req.method), attribute.String("url.full", url),
			attribute.String("plexus.service", req.service), attribute.String("plexus.instance", inst.ID))
		if n > 1 {
			span.SetAttributes(attribute.Int("http.request.resend_count", n-1))
		}
		if hedge {
			span.SetAttributes(attribute.Bool("plexus.hedge", true))
		}
	}
	ep := v.set.At(i)
	ep.Begin()
	start := time.Now()
	res := c.exchange(ctx, req, url)
	res.instance = inst.ID
	dur := time.Since(start)
	failure := retry.Failure(res.status, res.err)
	b.Record(t, res.backendErr()) // a call we (or the caller) cancelled says nothing about the instance
	ep.End(dur, !failure || errors.Is(res.err, context.Canceled))
	if res.err == nil && !failure {
		st.latency.observe(dur)
	}
	switch {
	case !recording:
	case errors.Is(res.err, context.Canceled):
		// A hedge loser or a caller that gave up: not an error of the call.
		span.SetAttributes(attribute.Bool("plexus.cancelled", true))
	case res.err != nil:
		span.RecordError(res.err)
		span.SetStatus(codes.Error, res.err.Error())
	default:
		span.SetAttributes(attribute.Int("http.response.status_code", res.status))
		if res.status >= 500 {
			span.SetStatus(codes.Error, "HTTP "+strconv.Itoa(res.status))
		}
	}
	return res
}

// exchange performs one HTTP request and reads the whole answer.
func (c *Client) exchange(ctx context.Context, req *request, url string) result {
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, url, body)
	if err != nil {
		return result{err: err}
	}
	for k, vs := range req.opts.header {
		hr.Header[k] = append(hr.Header[k], vs...)
	}
	if req.body != nil && hr.Header.Get("Content-Type") == "" {
		hr.Header.Set("Content-Type", "application/octet-stream")
	}
	telemetry.InjectHTTP(ctx, hr.Header)
	resp, err := c.cfg.HTTPClient.Do(hr)
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxResponseBytes+1))
	if err != nil {
		return result{err: err}
	}
	if int64(len(data)) > c.cfg.MaxResponseBytes {
		return result{err: fmt.Errorf("%w: more than %d bytes", ErrResponseTooLarge, c.cfg.MaxResponseBytes)}
	}
	return result{status: resp.StatusCode, header: resp.Header, body: data}
}
