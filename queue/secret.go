package queue

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/plexushq/plexus/engine"
)

// The receipt key signs receipts (receipt.go). It lives in its own bucket,
// engine.BucketSecrets, apart from the queues' options: a NATS user that
// only publishes reads the options bucket but not this one, so a
// publisher cannot forge receipts. A Client loads the key on its first
// receive, ack, nack or extend, so a publish-only Client never asks for it.
const (
	secretReceiptKey = "queue-receipt"
	// legacyReceiptKey is where versions before the secrets bucket kept
	// it, in the options bucket; the first node that finds it there moves
	// it (the same key, so receipts in flight stay valid).
	legacyReceiptKey = "_secret.receipt"
)

// receiptKey returns the HMAC key every node shares, loading (and the
// first time creating, or moving from the options bucket) it once.
func (b *Broker) receiptKey(ctx context.Context) ([]byte, error) {
	if k := b.key.Load(); k != nil {
		return *k, nil
	}
	b.keyMu.Lock()
	defer b.keyMu.Unlock()
	if k := b.key.Load(); k != nil {
		return *k, nil
	}
	k, err := b.loadReceiptKey(ctx)
	if err != nil {
		return nil, fmt.Errorf("queue: receipt key: %w", engine.Classify(err))
	}
	b.key.Store(&k)
	return k, nil
}

func (b *Broker) loadReceiptKey(ctx context.Context) ([]byte, error) {
	kv, err := engine.EnsureKVOn(ctx, b.js, jetstream.KeyValueConfig{
		Bucket: engine.BucketSecrets, Description: "Plexus secrets shared by control nodes (not for publishers)",
		History: 1, Replicas: b.opts.Replicas, Storage: jetstream.FileStorage,
	}, b.log)
	if err != nil {
		return nil, err
	}
	for range 3 {
		e, err := kv.Get(ctx, secretReceiptKey)
		if err == nil && len(e.Value()) >= 32 {
			b.dropLegacyKey(ctx)
			return e.Value(), nil
		}
		if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, err
		}
		k := b.legacyKey(ctx)
		if k == nil {
			k = make([]byte, 32)
			_, _ = rand.Read(k)
		}
		if _, err := kv.Create(ctx, secretReceiptKey, k); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, err
		}
	}
	return nil, errors.New("could not be read")
}

// legacyKey is the key an older version kept in the options bucket, nil
// when there is none.
func (b *Broker) legacyKey(ctx context.Context) []byte {
	e, err := b.kv.Get(ctx, legacyReceiptKey)
	if err != nil || len(e.Value()) < 32 {
		return nil
	}
	return e.Value()
}

// dropLegacyKey purges the old copy from the options bucket, which
// publishers may read.
func (b *Broker) dropLegacyKey(ctx context.Context) {
	if b.legacyKey(ctx) == nil {
		return
	}
	if err := b.kv.Purge(ctx, legacyReceiptKey); err != nil {
		b.log.Warn("queue: removing the old copy of the receipt key from the options bucket", "err", err)
		return
	}
	b.log.Info("queue: the receipt key moved to the secrets bucket", "bucket", engine.BucketSecrets)
}

// ensureQueueStream creates or updates a queue's stream. A stream that
// holds more replicas than this client's Replicas keeps them (someone
// raised them on purpose; the node's own objects were checked at start):
// the update is redone with the stored count, and logged.
func (b *Broker) ensureQueueStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	s, err := engine.EnsureStreamOn(ctx, b.js, cfg, b.log)
	var re *engine.ReplicasError
	if errors.As(err, &re) {
		b.log.Warn("queue: keeping the stream's higher replica count", "stream", cfg.Name, "stored", re.Stored, "configured", re.Wanted)
		cfg.Replicas = re.Stored
		s, err = engine.EnsureStreamOn(ctx, b.js, cfg, b.log)
	}
	return s, err
}
