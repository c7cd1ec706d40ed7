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
	// ID names this checker in the instances it checks (Instance.Checker).
	// It must differ between the checkers on one engine. Default: the host
	// name, a dash and 8 random characters.
	ID string
	// Writable reports whether the engine accepts writes, and since when.
	// A checker takes an instance over from a silent checker only once the
	// engine has accepted writes for the instance's interval plus the
	// grace: after a failover every checker's results stopped for a while,
	// and their owners must get the chance to report first. Nil: always
	// writable.
	Writable func() (since time.Time, ok bool)
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
// role); each instance is checked by one of them. A checker that sees an
// instance nobody checks claims it (Store.ClaimCheck, a compare-and-set:
// of checkers that see a new instance at once, one wins and the others
// leave it) and checks it from then on. The others leave it alone while
// its checker's results keep arriving, and claim it only after they stop
// for the interval plus a grace (its node went away). While the engine
// cannot store anything (a failover) a claim cannot succeed either, so the
// other checkers do not start probing instances whose results stopped.
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
	if cfg.ID == "" {
		cfg.ID = defaultCheckerID()
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

// planState is the planner's memory, bounded by the live instances.
type planState struct {
	inflight  map[string]bool
	notBefore map[string]time.Time
}

func (c *Checker) run(ctx context.Context) {
	defer close(c.done)
	var wg sync.WaitGroup
	defer wg.Wait()
	ps := &planState{inflight: map[string]bool{}, notBefore: map[string]time.Time{}}
	finished := make(chan string, c.cfg.Concurrency)
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
		case k := <-finished:
			delete(ps.inflight, k)
		}
		for drained := false; !drained; {
			select {
			case k := <-finished:
				delete(ps.inflight, k)
			default:
				drained = true
			}
		}
	}
}

// ID is the name this checker claims instances under.
func (c *Checker) ID() string { return c.cfg.ID }

// due is when inst's next check by this checker is: its own instances on
// their interval, unclaimed ones at once, another checker's only once that
// checker went silent (then it is claimed first).
func (c *Checker) due(inst *Instance, notBefore time.Time) time.Time {
	if inst.Checker != c.cfg.ID {
		due := later(notBefore, claimOpen(inst))
		if inst.Checker != "" && c.cfg.Writable != nil {
			since, ok := c.cfg.Writable()
			iv := inst.Check.Interval
			if !ok {
				return later(due, time.Now().Add(iv))
			}
			due = later(due, since.Add(iv+takeoverGrace(iv)))
		}
		return due
	}
	if inst.LastCheck != nil {
		return later(notBefore, inst.LastCheck.Add(inst.Check.Interval))
	}
	return notBefore
}

// plan starts the checks that are due and returns when the next one is.
func (c *Checker) plan(ctx context.Context, wg *sync.WaitGroup, ps *planState, finished chan<- string) time.Time {
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
			due := c.due(inst, ps.notBefore[k])
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
				c.claimAndCheck(ctx, inst)
				finished <- k
			}()
		}
	}
	for k := range ps.notBefore {
		if !seen[k] {
			delete(ps.notBefore, k)
		}
	}
	return next
}

// claimAndCheck checks inst, claiming it first unless it is this
// checker's already. A lost claim (another checker was quicker, or still
// reports) or an engine that cannot take the claim means no probe.
func (c *Checker) claimAndCheck(ctx context.Context, inst *Instance) {
	if inst.Checker != c.cfg.ID {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		claimed, err := c.store.ClaimCheck(cctx, inst.Service, inst.ID, c.cfg.ID)
		cancel()
		switch {
		case errors.Is(err, ErrCheckClaimed), errors.Is(err, ErrNotFound):
			return
		case err != nil:
			if ctx.Err() == nil {
				c.cfg.Logger.Debug("registry: claiming a check failed", "service", inst.Service, "instance", inst.ID, "err", err)
			}
			return
		}
		inst = claimed
	}
	c.check(ctx, inst)
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

// check probes one instance and records the result.
func (c *Checker) check(ctx context.Context, inst *Instance) {
	started := time.Now()
	ok, output := c.probe(ctx, inst)
	if ctx.Err() != nil {
		return // stopping: an interrupted check says nothing about the instance
	}
	c.m.observe(ok, time.Since(started))
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	stored, changed, err := c.store.RecordCheck(wctx, inst.Service, inst.ID,
		CheckResult{Started: started, OK: ok, Output: output, Checker: c.cfg.ID})
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrStaleCheck):
		return // deregistered or expired meanwhile, or another checker took the instance over
	case err != nil:
		c.cfg.Logger.Warn("registry: recording a check failed", "service", inst.Service, "instance", inst.ID, "err", err)
		return
	case changed:
		c.m.changed(stored.Status)
		level := slog.LevelInfo
		if stored.Status == StatusUnhealthy {
			level = slog.LevelWarn
		}
		c.cfg.Logger.Log(ctx, level, "registry: instance health changed", "service", inst.Service,
			"instance", inst.ID, "status", stored.Status, "output", stored.CheckOutput)
	}
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
