package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Names of the JetStream objects Plexus creates, in one place.
const (
	// BucketRegistry holds registry instances, key "<service>.<instance-id>".
	BucketRegistry = "plexus_registry"
	// BucketQueues holds queue options, key = queue name.
	BucketQueues = "plexus_queues"
	// BucketSnapshots holds event-stream snapshots, key = stream id.
	BucketSnapshots = "plexus_snapshots"
	// BucketParkedEvents holds events a subscriber group gave up on, key "<group>.<position>".
	BucketParkedEvents = "plexus_events_parked"
	// StreamEvents is the event store's single stream; its sequence is the
	// global position.
	StreamEvents = "PLEXUS_EVENTS"
	// QueueStreamPrefix prefixes the stream of each queue.
	QueueStreamPrefix = "PLEXUS_Q_"
	// SubjectPrefix prefixes every subject Plexus publishes on.
	SubjectPrefix = "plexus."
)

// EnsureStream creates the stream or updates it to cfg, so that calling it
// at every start is safe. Replicas default to the engine's.
func (e *Engine) EnsureStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	if cfg.Replicas == 0 {
		cfg.Replicas = e.cfg.Replicas
	}
	s, err := e.js.CreateOrUpdateStream(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("engine: stream %q: %w", cfg.Name, Classify(err))
	}
	e.ensuredStream(cfg.Name)
	return s, nil
}

// EnsureKV creates the key-value bucket or updates it to cfg. Replicas
// default to the engine's.
func (e *Engine) EnsureKV(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	if cfg.Replicas == 0 {
		cfg.Replicas = e.cfg.Replicas
	}
	kv, err := e.js.CreateOrUpdateKeyValue(ctx, cfg)
	if err != nil {
		if errors.Is(err, jetstream.ErrLimitMarkerTTLNotSupported) {
			return nil, fmt.Errorf("engine: bucket %q needs nats-server 2.11 or newer: %w", cfg.Bucket, err)
		}
		return nil, fmt.Errorf("engine: bucket %q: %w", cfg.Bucket, Classify(err))
	}
	e.ensuredStream("KV_" + cfg.Bucket)
	return kv, nil
}
