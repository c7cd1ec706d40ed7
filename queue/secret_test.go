package queue

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/internal/enginetest"
)

// TestReceiptKeyMovesToTheSecretsBucket: a store written by an older
// version holds the receipt key in the options bucket, which a publisher
// may read. The first receive moves the same key (receipts in flight stay
// valid) to the secrets bucket and purges the old copy; a client that
// only publishes never loads the key.
func TestReceiptKeyMovesToTheSecretsBucket(t *testing.T) {
	eng := enginetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts, err := eng.EnsureKV(ctx, jetstream.KeyValueConfig{Bucket: engine.BucketQueues, History: 1, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	legacy := bytes.Repeat([]byte{7}, 32)
	if _, err := opts.Put(ctx, legacyReceiptKey, legacy); err != nil {
		t.Fatal(err)
	}
	publisher := newFixtureOn(t, eng, nil)
	publisher.create("jobs", Config{})
	publisher.publish("jobs", Message{Payload: []byte(`{}`)})
	if publisher.c.key.Load() != nil {
		t.Fatal("a client that only published loaded the receipt key")
	}
	if _, err := eng.JetStream().KeyValue(ctx, engine.BucketSecrets); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Fatalf("secrets bucket before any receive: %v", err)
	}
	consumer := newFixtureOn(t, eng, nil)
	ds, err := consumer.c.Receive(ctx, "jobs", ReceiveOptions{Max: 1})
	if err != nil || len(ds) != 1 {
		t.Fatalf("receive: %v %d", err, len(ds))
	}
	secrets, err := eng.JetStream().KeyValue(ctx, engine.BucketSecrets)
	if err != nil {
		t.Fatal(err)
	}
	e, err := secrets.Get(ctx, secretReceiptKey)
	if err != nil || !bytes.Equal(e.Value(), legacy) {
		t.Fatalf("secrets bucket holds %v %v, want the legacy key", e, err)
	}
	if _, err := opts.Get(ctx, legacyReceiptKey); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("old copy after the move: %v", err)
	}
	if err := consumer.c.Ack(ctx, "jobs", []string{ds[0].Receipt}); err != nil {
		t.Fatalf("ack with a receipt signed by the moved key: %v", err)
	}
}
