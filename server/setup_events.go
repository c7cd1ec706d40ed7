package server

import (
	"context"
	"fmt"

	"github.com/plexushq/plexus/eventstore"
)

// setupEvents wires the event store on the control role: the events
// stream and buckets are created at start, the events API (docs/openapi.yaml) and the
// parked-event endpoints are served on the admin listener, and /health
// reports the number of events and the last position.
func (n *Node) setupEvents(context.Context) error {
	if !n.cfg.has(RoleControl) {
		return nil
	}
	log := n.log.With("component", "events")
	store := eventstore.New(n.eng, eventstore.Config{TracerProvider: n.tracer, Metrics: n.metrics, Logger: log})
	n.add("events", store)
	if err := n.metrics.Register(eventstore.NewCollector(store)); err != nil {
		return fmt.Errorf("events metrics: %w", err)
	}
	eventstore.NewAPI(store, eventstore.APIConfig{Logger: log, RequestTimeout: n.cfg.RequestTimeout,
		Streams: n.slots}).Mount(n.handleAdmin)
	n.addHealth("events", func(ctx context.Context) any {
		st, err := store.Stats(ctx)
		if err != nil {
			return map[string]any{"error": err.Error()}
		}
		return st
	})
	return nil
}
