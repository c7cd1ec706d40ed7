// Package clock is the one time source Plexus components take, so that
// tests control time instead of sleeping: Clock is the interface (breaker,
// ratelimit, retry, gateway, queue and registry accept one), System reads
// the wall clock, Manual is moved by hand, and Func adapts a function.
package clock

import (
	"sync"
	"time"
)

// Clock tells the time.
type Clock interface{ Now() time.Time }

type system struct{}

func (system) Now() time.Time { return time.Now() }

// System is the wall clock.
var System Clock = system{}

// IsSystem reports whether c is the wall clock (or nil, which components
// read as the wall clock), so hot paths can call time.Now directly.
func IsSystem(c Clock) bool { return c == nil || c == System }

// Or returns c, or System when c is nil.
func Or(c Clock) Clock {
	if c == nil {
		return System
	}
	return c
}

// Func adapts a function to Clock, e.g. clock.Func(time.Now).
type Func func() time.Time

// Now calls f.
func (f Func) Now() time.Time { return f() }

// Manual is a Clock a test moves by hand. It is safe for concurrent use.
type Manual struct {
	mu sync.Mutex
	t  time.Time
}

// NewManual returns a clock standing at t.
func NewManual(t time.Time) *Manual { return &Manual{t: t} }

// Now returns the clock's time.
func (m *Manual) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.t
}

// Advance moves the clock forward by d.
func (m *Manual) Advance(d time.Duration) {
	m.mu.Lock()
	m.t = m.t.Add(d)
	m.mu.Unlock()
}

// Set moves the clock to t.
func (m *Manual) Set(t time.Time) {
	m.mu.Lock()
	m.t = t
	m.mu.Unlock()
}
