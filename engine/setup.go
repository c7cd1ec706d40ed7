package engine

import (
	"context"

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
	// BucketSecrets holds secrets every control node shares (the queue
	// receipt key), apart from the data a client that only publishes may
	// read.
	BucketSecrets = "plexus_secrets"
	// SubjectPrefix prefixes every subject Plexus publishes on.
	SubjectPrefix = "plexus."
)

// EnsureStream creates the stream or updates it to cfg, so that calling it
// at every start is safe. Replicas default to the engine's; an existing
// stream with more replicas is an error (ErrReplicasLowered), as is a
// server that drops a feature cfg asks for (ErrIncompatible).
func (e *Engine) EnsureStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	if cfg.Replicas == 0 {
		cfg.Replicas = e.cfg.Replicas
	}
	s, err := EnsureStreamOn(ctx, e.js, cfg, e.cfg.Logger)
	if err != nil {
		return nil, err
	}
	e.ensuredStream(cfg.Name)
	return s, nil
}

// EnsureKV creates the key-value bucket or updates it to cfg. Replicas
// default to the engine's; an existing bucket with more replicas is an
// error (ErrReplicasLowered).
func (e *Engine) EnsureKV(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	if cfg.Replicas == 0 {
		cfg.Replicas = e.cfg.Replicas
	}
	kv, err := EnsureKVOn(ctx, e.js, cfg, e.cfg.Logger)
	if err != nil {
		return nil, err
	}
	e.ensuredStream("KV_" + cfg.Bucket)
	return kv, nil
}
