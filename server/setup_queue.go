package server

import (
	"context"
	"fmt"

	"github.com/plexushq/plexus/queue"
)

// queueComponent runs the queue broker and creates the queues of the
// file's queues: section at start (a reload applies them through the
// node's reload, setupQueue).
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

func decodeQueues(fc *FileConfig) (map[string]queue.Config, error) {
	queues := map[string]queue.Config{}
	if fc == nil {
		return queues, nil
	}
	if err := DecodeSection(&fc.Queues, &queues); err != nil {
		return nil, fmt.Errorf("queues: %w", err)
	}
	if err := queue.Check(queues); err != nil {
		return nil, err
	}
	return queues, nil
}

// setupQueue wires the durable message queue on the control role: queues
// of the queues: section are created at start, the queue API (docs/openapi.yaml) is
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
	// A reload creates or updates the queues the changed file lists; queues
	// it no longer lists are kept (they may hold messages).
	n.onReload("queues", func(fc *FileConfig) (change, error) {
		queues, err := decodeQueues(fc)
		if err != nil {
			return change{}, err
		}
		return change{fallible: true, apply: func(ctx context.Context) error { return b.Configure(ctx, queues) }}, nil
	})
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
