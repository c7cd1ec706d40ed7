package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/plexushq/plexus/telemetry"
)

// tracerName names the registry's tracer.
const tracerName = "github.com/plexushq/plexus/registry"

// CheckerConfig configures the active health checker. The zero value works.
type CheckerConfig struct {
	// Concurrency bounds the checks in flight at once. Default 32.
	Concurrency int
	// Transport for the checks. Default: a dedicated transport with short
	// idle timeouts, closed on Stop.
	Transport http.RoundTripper
	// Metrics receives plexus_registry_checks_total{result},
	// plexus_registry_check_duration_seconds and
	// plexus_registry_status_changes_total{status}; nil means none.
	Metrics prometheus.Registerer
	// Logger for status changes. Default slog.Default().
	Logger *slog.Logger
	// TracerProvider records a client span per check and sends its trace
	// context (traceparent) with the check request. Nil: no spans.
	TracerProvider trace.TracerProvider
}

// Checker runs the active health checks: for every instance it sends
// GET <url><check.path> every check.interval, bounded by check.timeout;
// a 2xx answer passes, anything else (other status, error, timeout)
// fails, and Store.RecordCheck applies the rise/fall thresholds.
//
// It schedules from a registry Cache: one goroutine plans, and each check
// runs in a goroutine that ends with the check (at most Concurrency at
// once); nothing is kept per instance beyond the next due time, which is
// dropped when the instance goes away.
//
// Several checkers may run on one engine (one per node with the checker
// role). Each checks an instance only when the stored lastCheck is older
// than the interval, so normally one of them does the work; when two race,
// the compare-and-set update keeps the state consistent and RecordCheck
// drops the result that is older than the stored last check.
type Checker struct {
	store  *Store
	cache  *Cache
	cfg    CheckerConfig
	client *http.Client
	tr     *http.Transport // owned, closed on Stop; nil when given
	m      *checkMetrics
	tracer trace.Tracer

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// NewChecker returns a checker that writes to store and plans from cache
// (a started Cache of the same registry).
func NewChecker(store *Store, cache *Cache, cfg CheckerConfig) *Checker {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 32
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	tp := cfg.TracerProvider
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	c := &Checker{store: store, cache: cache, cfg: cfg, tracer: tp.Tracer(tracerName)}
	rt := cfg.Transport
	if rt == nil {
		c.tr = &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     30 * time.Second,
			DisableCompression:  true,
		}
		rt = c.tr
	}
	c.client = &http.Client{
		Transport: rt,
		// A redirect is an answer of its own, not a pass.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c
}

// Start starts the planning goroutine.
func (c *Checker) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel != nil {
		return errors.New("registry: checker already started")
	}
	m, err := newCheckMetrics(c.cfg.Metrics)
	if err != nil {
		return err
	}
	c.m = m
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.cancel, c.done = cancel, make(chan struct{})
	go c.run(rctx)
	return nil
}

// Stop cancels the checks in flight and waits for them, bounded by ctx.
func (c *Checker) Stop(ctx context.Context) error {
	c.mu.Lock()
	cancel, done := c.cancel, c.done
	c.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("registry: checker stop: %w", ctx.Err())
	}
	if c.tr != nil {
		c.tr.CloseIdleConnections()
	}
	c.m.unregister(c.cfg.Metrics)
	return nil
}

// minScanGap spaces the planner's scans when changes arrive quickly.
const minScanGap = 10 * time.Millisecond

// checkDone reports a finished check to the planner: the lastCheck it
// stored (zero when it stored nothing).
type checkDone struct {
	key  string
	last time.Time
}

// planState is the planner's memory, bounded by the live instances.
type planState struct {
	inflight  map[string]bool
	notBefore map[string]time.Time
	// own holds the lastCheck this checker stored per instance: while the
	// stored lastCheck is ours, we keep checking on time; otherwise we wait
	// a grace period more, so one checker does the work and the others
	// take over only when it stops.
	own map[string]time.Time
}

func (c *Checker) run(ctx context.Context) {
	defer close(c.done)
	var wg sync.WaitGroup
	defer wg.Wait()
	ps := &planState{inflight: map[string]bool{}, notBefore: map[string]time.Time{}, own: map[string]time.Time{}}
	finished := make(chan checkDone, c.cfg.Concurrency)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		changed := c.cache.Changed()
		next := c.plan(ctx, &wg, ps, finished)
		timer.Reset(max(time.Until(next), minScanGap))
		select {
		case <-ctx.Done():
			return
		case <-changed:
			// Let a burst of changes settle into one scan.
			select {
			case <-ctx.Done():
				return
			case <-time.After(minScanGap):
			}
		case <-timer.C:
		case d := <-finished:
			ps.finish(d)
		}
		for drained := false; !drained; {
			select {
			case d := <-finished:
				ps.finish(d)
			default:
				drained = true
			}
		}
	}
}

func (ps *planState) finish(d checkDone) {
	delete(ps.inflight, d.key)
	if !d.last.IsZero() {
		ps.own[d.key] = d.last
	}
}

// takeoverGrace is how much longer than the interval a checker waits
// before checking an instance another checker checked last.
func takeoverGrace(interval time.Duration) time.Duration { return min(interval/2, 5*time.Second) }

// plan starts the checks that are due and returns when the next one is.
func (c *Checker) plan(ctx context.Context, wg *sync.WaitGroup, ps *planState, finished chan<- checkDone) time.Time {
	now := time.Now()
	next := now.Add(time.Minute)
	seen := make(map[string]bool, len(ps.notBefore))
	for _, svc := range c.cache.state.Load().sorted {
		for _, inst := range svc.Instances {
			k := key(inst.Service, inst.ID)
			seen[k] = true
			if ps.inflight[k] {
				continue
			}
			due := ps.notBefore[k]
			if inst.LastCheck != nil {
				iv := inst.Check.Interval
				if !inst.LastCheck.Equal(ps.own[k]) {
					iv += takeoverGrace(iv)
				}
				due = later(due, inst.LastCheck.Add(iv))
			}
			if due.After(now) {
				next = earlier(next, due)
				continue
			}
			if len(ps.inflight) >= c.cfg.Concurrency {
				continue // a finishing check wakes the planner
			}
			ps.inflight[k] = true
			ps.notBefore[k] = now.Add(inst.Check.Interval)
			wg.Add(1)
			go func() {
				defer wg.Done()
				finished <- checkDone{key: k, last: c.check(ctx, inst)}
			}()
		}
	}
	for k := range ps.notBefore {
		if !seen[k] {
			delete(ps.notBefore, k)
			delete(ps.own, k)
		}
	}
	return next
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// check probes one instance and records the result; it returns the
// lastCheck it stored, zero when it stored nothing.
func (c *Checker) check(ctx context.Context, inst *Instance) time.Time {
	started := time.Now()
	ok, output := c.probe(ctx, inst)
	if ctx.Err() != nil {
		return time.Time{} // stopping: an interrupted check says nothing about the instance
	}
	c.m.observe(ok, time.Since(started))
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	stored, changed, err := c.store.RecordCheck(wctx, inst.Service, inst.ID, CheckResult{Started: started, OK: ok, Output: output})
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrStaleCheck):
		return time.Time{} // deregistered or expired meanwhile, or another checker was quicker
	case err != nil:
		c.cfg.Logger.Warn("registry: recording a check failed", "service", inst.Service, "instance", inst.ID, "err", err)
		return time.Time{}
	case changed:
		c.m.changed(stored.Status)
		level := slog.LevelInfo
		if stored.Status == StatusUnhealthy {
			level = slog.LevelWarn
		}
		c.cfg.Logger.Log(ctx, level, "registry: instance health changed", "service", inst.Service,
			"instance", inst.ID, "status", stored.Status, "output", stored.CheckOutput)
	}
	return *stored.LastCheck
}

// probe sends the check request; it passes on a 2xx answer within the
// timeout.
func (c *Checker) probe(ctx context.Context, inst *Instance) (ok bool, output string) {
	ctx, cancel := context.WithTimeout(ctx, inst.Check.Timeout)
	defer cancel()
	target := strings.TrimRight(inst.URL, "/") + inst.Check.Path
	ctx, span := c.tracer.Start(ctx, "registry.check", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("plexus.service", inst.Service), attribute.String("plexus.instance", inst.ID),
			attribute.String("url.full", target)))
	defer func() {
		if !ok {
			span.SetStatus(codes.Error, output)
		}
		span.End()
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return false, "bad check URL: " + err.Error()
	}
	req.Header.Set("User-Agent", "plexus-health-checker")
	telemetry.InjectHTTP(ctx, req.Header)
	resp, err := c.client.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return false, fmt.Sprintf("timeout after %s", inst.Check.Timeout)
		}
		return false, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	out := resp.Status
	if b := strings.TrimSpace(string(body)); b != "" {
		out += ": " + b
	}
	return resp.StatusCode >= 200 && resp.StatusCode < 300, out
}
