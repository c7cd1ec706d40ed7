package qhttp

import (
	"context"
	"log/slog"
	"time"
)

// Consume long-polls queue as consumer until ctx ends and calls handle
// for each message, one at a time; handle acks or nacks it. A failed
// receive is logged and retried with a backoff (100ms doubling to 5s).
func (c *Client) Consume(ctx context.Context, log *slog.Logger, queue, consumer string, handle func(Delivery)) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		msgs, err := c.Receive(ctx, queue, consumer, 10, 10*time.Second)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("receive failed", "queue", queue, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		for _, m := range msgs {
			handle(m)
		}
	}
}
