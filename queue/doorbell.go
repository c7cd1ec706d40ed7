package queue

import (
	"sync"

	"github.com/nats-io/nats.go"
)

// doorbell wakes waiting receivers when a message is published into a
// ready subject. It subscribes only while someone waits, so idle queues
// cost nothing; redeliveries and fired delays are caught by polling.
type doorbell struct {
	nc      *nats.Conn
	subject string

	mu      sync.Mutex
	ch      chan struct{}
	sub     *nats.Subscription
	waiters int
	closed  bool
}

func newDoorbell(nc *nats.Conn, subject string) *doorbell {
	return &doorbell{nc: nc, subject: subject, ch: make(chan struct{})}
}

// arm registers a waiter and returns the channel closed at the next publish.
func (b *doorbell) arm() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.waiters++
	if b.sub == nil && !b.closed {
		b.sub, _ = b.nc.Subscribe(b.subject, func(*nats.Msg) { b.ring() })
	}
	return b.ch
}

func (b *doorbell) ring() {
	b.mu.Lock()
	close(b.ch)
	b.ch = make(chan struct{})
	b.mu.Unlock()
}

func (b *doorbell) disarm() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.waiters--
	if b.waiters == 0 && b.sub != nil {
		_ = b.sub.Unsubscribe()
		b.sub = nil
	}
}

func (b *doorbell) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if b.sub != nil {
		_ = b.sub.Unsubscribe()
		b.sub = nil
	}
}
