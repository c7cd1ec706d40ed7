package telemetry

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// HistoryConfig sizes a History. Zero values take the defaults.
type HistoryConfig struct {
	// Interval between samples. Default 5s.
	Interval time.Duration
	// Samples kept (the ring's size). Default 360: 30 minutes at 5s.
	Samples int
	// MaxSeries bounds the services, queues and subscriber groups kept per
	// sample (the first by name). Default 50.
	MaxSeries int
	// Logger for failed samples. Default slog.Default().
	Logger *slog.Logger
}

func (c *HistoryConfig) defaults() {
	if c.Interval <= 0 {
		c.Interval = 5 * time.Second
	}
	if c.Samples <= 0 {
		c.Samples = 360
	}
	if c.MaxSeries <= 0 {
		c.MaxSeries = 50
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// History keeps a short, bounded history of a node's key metrics in memory
// so the dashboard can draw charts without a Prometheus server: every
// Interval it gathers the node's registry and keeps, per sample, the
// gateway's request and error rates and latency percentiles per service,
// breaker states, queue depths, the event append rate and subscription
// lags. Rates and percentiles are computed between consecutive samples,
// as rate() and histogram_quantile() would over one interval.
type History struct {
	g   prometheus.Gatherer
	cfg HistoryConfig

	mu     sync.Mutex
	ring   []*sample // oldest first, at most cfg.Samples
	prev   *raw      // the last gathered counters, for rates
	cancel context.CancelFunc
	done   chan struct{}
}

// NewHistory returns a History over g; Start samples it periodically.
func NewHistory(g prometheus.Gatherer, cfg HistoryConfig) *History {
	cfg.defaults()
	return &History{g: g, cfg: cfg}
}

// Start begins sampling in a goroutine that Stop ends.
func (h *History) Start(context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cancel != nil {
		return errors.New("telemetry: history already started")
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan struct{})
	go h.run(ctx)
	return nil
}

// Stop ends sampling, bounded by ctx. The samples taken stay readable.
func (h *History) Stop(ctx context.Context) error {
	h.mu.Lock()
	cancel, done := h.cancel, h.done
	h.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *History) run(ctx context.Context) {
	defer close(h.done)
	t := time.NewTicker(h.cfg.Interval)
	defer t.Stop()
	h.Sample(time.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			h.Sample(now)
		}
	}
}

// Sample gathers the registry once and appends a sample taken at now,
// dropping the oldest beyond the ring's size. Start calls it every
// Interval; tests call it with their own clock.
func (h *History) Sample(now time.Time) {
	mfs, err := h.g.Gather()
	if err != nil && len(mfs) == 0 {
		h.cfg.Logger.Warn("telemetry: metrics history: gathering failed", "err", err)
		return
	}
	cur := readRaw(mfs, h.cfg.MaxSeries)
	h.mu.Lock()
	defer h.mu.Unlock()
	s := cur.sample(now, h.prev)
	h.prev = cur
	if len(h.ring) == h.cfg.Samples {
		copy(h.ring, h.ring[1:])
		h.ring = h.ring[:len(h.ring)-1]
	}
	h.ring = append(h.ring, s)
}

// Snapshot returns the history in columns (see HistoryAnswer).
func (h *History) Snapshot() HistoryAnswer {
	h.mu.Lock()
	ring := slices.Clone(h.ring)
	h.mu.Unlock()
	return columns(ring, h.cfg)
}
