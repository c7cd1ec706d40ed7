package httpx

import (
	"fmt"
	"net/http"
)

// DefaultMaxStreams is a node's default cap on concurrent long-lived
// answers (event subscriptions and registry watches).
const DefaultMaxStreams = 1000

// Slots caps the concurrent long-lived answers (server-sent events) of a
// node: each holds a goroutine, an engine consumer and buffers, so without
// a cap a reconnect storm could exhaust the node. The zero value is not
// usable; build it with NewSlots. Several APIs share one.
type Slots struct {
	ch chan struct{}
}

// NewSlots allows n concurrent streams (DefaultMaxStreams when n <= 0).
func NewSlots(n int) *Slots {
	if n <= 0 {
		n = DefaultMaxStreams
	}
	return &Slots{ch: make(chan struct{}, n)}
}

// Acquire takes a slot without waiting. When none is free it returns a
// 503 *Problem with a retry hint; otherwise call release when the stream
// ends. A nil *Slots allows everything.
func (s *Slots) Acquire() (release func(), err error) {
	if s == nil {
		return func() {}, nil
	}
	select {
	case s.ch <- struct{}{}:
		return func() { <-s.ch }, nil
	default:
		return nil, NewProblem(http.StatusServiceUnavailable, "too-many-subscribers",
			fmt.Sprintf("this node already serves %d streams (its --max-streams); retry shortly or on another node", cap(s.ch))).
			Retry(RetryBusy)
	}
}

// InUse is the number of streams running.
func (s *Slots) InUse() int {
	if s == nil {
		return 0
	}
	return len(s.ch)
}
