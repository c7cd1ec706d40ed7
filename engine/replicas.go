package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrReplicasLowered means a stream or bucket holds more replicas than the
// configuration asks for. A node never lowers them: one node started
// without --nats-replicas would otherwise cut a 3-replica cluster's data
// to one copy. The *ReplicasError in the chain names the object and both
// numbers.
var ErrReplicasLowered = errors.New("engine: would lower replicas")

// ReplicasError is a stream or bucket whose stored replica count is higher
// than the one asked for.
type ReplicasError struct {
	Object         string // "stream PLEXUS_EVENTS" or "bucket plexus_registry"
	Stored, Wanted int
}

func (e *ReplicasError) Error() string {
	return fmt.Sprintf("engine: %s has %d replicas and this node would lower them to %d; a node never lowers replicas: "+
		"start it with --nats-replicas %d (to really have fewer, change the stream first, e.g. nats stream edit --replicas)",
		e.Object, e.Stored, e.Wanted, e.Stored)
}

// Is makes every ReplicasError match ErrReplicasLowered.
func (e *ReplicasError) Is(target error) bool { return target == ErrReplicasLowered }

// storedReplicas is the replica count of an existing stream, 0 when there
// is no such stream.
func storedReplicas(ctx context.Context, js jetstream.JetStream, stream string) (int, error) {
	s, err := js.Stream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return s.CachedInfo().Config.Replicas, nil
}

// guardReplicas refuses to lower an existing stream's replicas (a
// *ReplicasError) and logs when the update raises them.
func guardReplicas(ctx context.Context, js jetstream.JetStream, object, stream string, wanted int, log *slog.Logger) error {
	stored, err := storedReplicas(ctx, js, stream)
	if err != nil {
		return fmt.Errorf("engine: %s: %w", object, Classify(err))
	}
	wanted = max(wanted, 1)
	switch {
	case stored > wanted:
		return &ReplicasError{Object: object, Stored: stored, Wanted: wanted}
	case stored > 0 && stored < wanted:
		log.Info("raising the replicas of "+object, "from", stored, "to", wanted)
	}
	return nil
}

// EnsureStreamOn creates the stream or updates it to cfg on any JetStream
// context, as Engine.EnsureStream does: it never lowers the replicas of an
// existing stream (ErrReplicasLowered), and it refuses a server that drops
// a feature cfg asks for (ErrIncompatible). log receives raises.
func EnsureStreamOn(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig, log *slog.Logger) (jetstream.Stream, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := guardReplicas(ctx, js, "stream "+cfg.Name, cfg.Name, cfg.Replicas, log); err != nil {
		return nil, err
	}
	s, err := js.CreateOrUpdateStream(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("engine: stream %q: %w", cfg.Name, Classify(err))
	}
	if err := verifyFeatures(cfg, s.CachedInfo()); err != nil {
		return nil, err
	}
	return s, nil
}

// EnsureKVOn creates the bucket or updates it to cfg on any JetStream
// context, as Engine.EnsureKV does: it never lowers the replicas of an
// existing bucket (ErrReplicasLowered).
func EnsureKVOn(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig, log *slog.Logger) (jetstream.KeyValue, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := guardReplicas(ctx, js, "bucket "+cfg.Bucket, "KV_"+cfg.Bucket, cfg.Replicas, log); err != nil {
		return nil, err
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, cfg)
	if err != nil {
		if errors.Is(err, jetstream.ErrLimitMarkerTTLNotSupported) {
			return nil, fmt.Errorf("%w: bucket %q: the server does not support per-key TTLs; Plexus needs nats-server %s or newer: %w",
				ErrIncompatible, cfg.Bucket, MinServerVersion, err)
		}
		return nil, fmt.Errorf("engine: bucket %q: %w", cfg.Bucket, Classify(err))
	}
	return kv, nil
}
