package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/plexushq/plexus/queue"
)

// Queues returns a client of the node's queue API (queue.Client); hc nil
// means no overall timeout (receives long-poll; calls are bounded by ctx).
func (c Config) Queues(hc *http.Client) (*queue.Client, error) {
	return queue.NewClient(c.AdminURL, c.Token, queue.ClientConfig{HTTPClient: hc})
}

// EnsureQueue creates the queue with cfg unless it exists; an existing
// queue's options are left as they are (an operator may have tuned them).
func EnsureQueue(ctx context.Context, q *queue.Client, name string, cfg queue.Config) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := q.Stats(ctx, name)
	if errors.Is(err, queue.ErrQueueNotFound) {
		_, _, err = q.CreateQueue(ctx, name, cfg)
	}
	if err != nil {
		return fmt.Errorf("queue %s: %w", name, err)
	}
	return nil
}

// JSONMessage is a queue message whose payload is v as JSON, with id.
func JSONMessage(id string, v any) (queue.Message, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return queue.Message{}, err
	}
	return queue.Message{ID: id, Payload: b}, nil
}
