package server

import (
	"context"
	"fmt"
	"time"

	"github.com/plexushq/plexus/queue"
)

// queueComponent runs the queue broker and applies the queues: section
// of the configuration file at start and on reload.
type queueComponent struct {
	*queue.Broker
	queues map[string]queue.Config
}

// Start creates the configured queues and starts the broker's housekeeping.
func (q queueComponent) Start(ctx context.Context) error {
	if err := q.Configure(ctx, q.queues); err != nil {
		return err
	}
	return q.Broker.Start(ctx)
}

// Reload creates or updates the queues the changed file lists; queues it
// no longer lists are kept (they may hold messages).
func (q queueComponent) Reload(fc *FileConfig) error {
	queues, err := decodeQueues(fc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return q.Configure(ctx, queues)
}

func decodeQueues(fc *FileConfig) (map[string]queue.Config, error) {
	queues := map[string]queue.Config{}
	if fc == nil {
		return queues, nil
	}
	if err := DecodeSection(&fc.Queues, &queues); err != nil {
		return nil, fmt.Errorf("queues: %w", err)
	}
	return queues, nil
}

// setupQueue wires the durable message queue on the control role: queues
// of the queues: section are created at start, the Queues API (API.md) is
// served on the admin listener, and /health counts the queues.
func (n *Node) setupQueue(ctx context.Context) error {
	if !n.cfg.has(RoleControl) {
		return nil
	}
	queues, err := decodeQueues(n.file)
	if err != nil {
		return err
	}
	log := n.log.With("component", "queue")
	b, err := queue.New(ctx, n.eng.JetStream(), queue.Options{
		TracerProvider: n.tracer, Metrics: n.metrics, Logger: log, Replicas: n.eng.Replicas(),
		RequestTimeout: n.cfg.RequestTimeout, MaxQueues: n.cfg.MaxQueues, Writable: n.eng.Writable,
	})
	if err != nil {
		return err
	}
	if err := n.metrics.Register(queue.NewCollector(b)); err != nil {
		return fmt.Errorf("queue metrics: %w", err)
	}
	n.add("queue", queueComponent{Broker: b, queues: queues})
	queue.NewAPI(b, queue.APIConfig{RequestTimeout: n.cfg.RequestTimeout, Logger: log}).Mount(n.handleAdmin)
	n.addHealth("queues", func(ctx context.Context) any {
		names, err := b.Names(ctx)
		if err != nil {
			return map[string]any{"error": err.Error()}
		}
		return map[string]any{"count": len(names)}
	})
	return nil
}
