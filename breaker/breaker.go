package breaker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plexushq/plexus/clock"
)

// ErrOpen is returned by Allow when the breaker is open, or half-open with
// all its probes in flight.
var ErrOpen = errors.New("circuit breaker is open")

// Defaults for zero Config fields (the seed's values where it had one;
// docs/gateway.md).
const (
	DefaultFailureThreshold = 5
	DefaultFailureRatio     = 0.5
	DefaultMinRequests      = 20
	DefaultWindow           = 10 * time.Second
	DefaultResetTimeout     = 60 * time.Second
	DefaultHalfOpenRequests = 3
)

// Config sets when a breaker opens and how it recovers. Zero fields take the
// defaults above.
type Config struct {
	// FailureThreshold consecutive failures open the breaker. Default 5;
	// negative disables this rule.
	FailureThreshold int
	// FailureRatio of failures among the results in Window opens the
	// breaker, once MinRequests results were seen. Default 0.5; negative
	// disables this rule.
	FailureRatio float64
	// MinRequests is the volume in Window below which the ratio rule does
	// not apply. Default 20.
	MinRequests int
	// Window is the span of the rolling window (10 buckets). Default 10s.
	Window time.Duration
	// ResetTimeout is how long the breaker stays open before probing.
	// Default 60s.
	ResetTimeout time.Duration
	// HalfOpenRequests is both the number of concurrent probes admitted in
	// half-open and the number of successes that close it. Default 3.
	HalfOpenRequests int
}

// Validate reports values that make no sense (zero values are fine).
func (c Config) Validate() error {
	switch {
	case c.FailureRatio > 1:
		return fmt.Errorf("breaker: failureRatio %v above 1", c.FailureRatio)
	case c.MinRequests < 0:
		return fmt.Errorf("breaker: minRequests %d is negative", c.MinRequests)
	case c.Window < 0:
		return fmt.Errorf("breaker: window %v is negative", c.Window)
	case c.ResetTimeout < 0:
		return fmt.Errorf("breaker: resetTimeout %v is negative", c.ResetTimeout)
	case c.HalfOpenRequests < 0:
		return fmt.Errorf("breaker: halfOpenRequests %d is negative", c.HalfOpenRequests)
	}
	return nil
}

// withDefaults returns c with zero fields set to the defaults.
func (c Config) withDefaults() Config {
	if c.FailureThreshold == 0 {
		c.FailureThreshold = DefaultFailureThreshold
	}
	if c.FailureRatio == 0 {
		c.FailureRatio = DefaultFailureRatio
	}
	if c.MinRequests <= 0 {
		c.MinRequests = DefaultMinRequests
	}
	if c.Window <= 0 {
		c.Window = DefaultWindow
	}
	if c.ResetTimeout <= 0 {
		c.ResetTimeout = DefaultResetTimeout
	}
	if c.HalfOpenRequests <= 0 {
		c.HalfOpenRequests = DefaultHalfOpenRequests
	}
	return c
}

// State is a breaker's state.
type State int

// The breaker states.
const (
	Closed State = iota
	Open
	HalfOpen
)

// String returns "closed", "open" or "half-open".
func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// MarshalText encodes the state as its String, for JSON.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Option configures a Breaker (or every breaker of a Group).
type Option func(*options)

type options struct {
	clock    clock.Clock
	onChange func(name string, from, to State)
	failure  func(err error) bool
}

// WithFailure sets how Record classifies a call's error: failure(err)
// reports whether err counts against the backend. An error it does not
// count says nothing about the backend (the caller's own cancellation, a
// client's broken request) and releases the ticket without a result. The
// default counts every error but context.Canceled. The breaker knows no
// transport: HTTP callers turn a 5xx answer into an error (package retry
// classifies HTTP results).
func WithFailure(failure func(err error) bool) Option {
	return func(o *options) { o.failure = failure }
}

// DefaultFailure is the default classification of WithFailure: every error
// but context.Canceled is a failure.
func DefaultFailure(err error) bool { return !errors.Is(err, context.Canceled) }

// WithClock makes the breaker read time from c instead of time.Now.
func WithClock(c clock.Clock) Option { return func(o *options) { o.clock = c } }

// OnStateChange registers f to be called after every state change. Calls
// are made outside the breaker's lock, one at a time per breaker and in the
// order of the changes (possibly from the goroutine of a later change); f
// may call any method of the breaker, and should be quick.
func OnStateChange(f func(name string, from, to State)) Option {
	return func(o *options) { o.onChange = f }
}

// Ticket is the permission to make one call, returned by Allow and handed
// back to Done (or Release). The zero Ticket is never valid.
type Ticket struct {
	gen   uint64
	probe bool
}

// Probe reports that the ticket holds one of the half-open probe slots.
func (t Ticket) Probe() bool { return t.probe }

// Info is a breaker's state for listings and Retry-After.
type Info struct {
	Name  string
	State State
	// Failures is the number of failures in the rolling window.
	Failures int
	// Requests is the number of results in the rolling window.
	Requests int
	// ConsecutiveFailures is the current run of failures while closed.
	ConsecutiveFailures int
	// OpenedAt is when the breaker last opened; zero while closed.
	OpenedAt time.Time
	// RetryAfter is how long until a call may be admitted again: the rest of
	// the reset timeout while open, one second (at most the reset timeout)
	// while half-open, zero while closed.
	RetryAfter time.Duration
}

// Breaker is one circuit breaker. Its methods are safe for concurrent use.
type Breaker struct {
	name     string
	cfg      Config
	clock    clock.Clock
	onChange func(name string, from, to State)
	failure  func(err error) bool
	born     time.Time
	sysClock bool // clock is the system clock: use the monotonic fast path

	// packed is gen<<2 | state, read without the lock by Allow while closed.
	packed atomic.Uint64

	mu        sync.Mutex
	state     State
	gen       uint64
	consec    int
	win       window
	openedAt  time.Time
	halfSince time.Time
	probes    int // half-open probes in flight
	successes int // half-open probe successes

	pending  []change   // changes not yet reported, guarded by mu
	notifyMu sync.Mutex // held by the goroutine reporting changes
}

// New returns a closed breaker named name (used in Info and OnStateChange).
// Zero fields of cfg take the defaults; call cfg.Validate first to reject
// nonsense from configuration files.
func New(name string, cfg Config, opts ...Option) *Breaker {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	o.clock = clock.Or(o.clock)
	if o.failure == nil {
		o.failure = DefaultFailure
	}
	cfg = cfg.withDefaults()
	b := &Breaker{name: name, cfg: cfg, clock: o.clock, onChange: o.onChange, failure: o.failure, gen: 1}
	b.sysClock = clock.IsSystem(b.clock)
	b.born = b.clock.Now()
	b.win.init(cfg.Window)
	b.packed.Store(b.gen << 2)
	return b
}

// Name returns the breaker's name.
func (b *Breaker) Name() string { return b.name }

// Config returns the breaker's configuration with defaults applied.
func (b *Breaker) Config() Config { return b.cfg }

// State returns the current state (without advancing open to half-open).
func (b *Breaker) State() State { return State(b.packed.Load() & 3) }
