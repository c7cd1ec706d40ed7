package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/internal/clustertest"
)

// TestReplicasNeverLowered: on a 3-node cluster whose streams and buckets
// have 3 replicas, a node started without --nats-replicas (1) used to cut
// them to 1 at start. Now that is an error naming the object and both
// numbers, and nothing changes; a node with more replicas raises them.
func TestReplicasNeverLowered(t *testing.T) {
	cl := clustertest.Start(t, clustertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r3, err := startErr(engine.Config{URLs: cl.URLs(), Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer stop(t, r3)
	r1, err := startErr(engine.Config{URLs: cl.URLs()})
	if err != nil {
		t.Fatal(err)
	}
	defer stop(t, r1)
	stream := jetstream.StreamConfig{Name: "GUARDED", Subjects: []string{"guarded.>"}}
	bucket := jetstream.KeyValueConfig{Bucket: "guarded"}
	if _, err := r3.EnsureStream(ctx, stream); err != nil {
		t.Fatal(err)
	}
	if _, err := r3.EnsureKV(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	_, err = r1.EnsureStream(ctx, stream)
	var re *engine.ReplicasError
	if !errors.Is(err, engine.ErrReplicasLowered) || !errors.As(err, &re) || re.Stored != 3 || re.Wanted != 1 ||
		!strings.Contains(err.Error(), "GUARDED") || !strings.Contains(err.Error(), "--nats-replicas 3") {
		t.Fatalf("stream: %v", err)
	}
	if _, err := r1.EnsureKV(ctx, bucket); !errors.Is(err, engine.ErrReplicasLowered) || !strings.Contains(err.Error(), "bucket guarded") {
		t.Fatalf("bucket: %v", err)
	}
	for _, name := range []string{"GUARDED", "KV_guarded"} {
		if got := replicas(t, ctx, r1, name); got != 3 {
			t.Fatalf("%s has %d replicas after the refused update, want 3", name, got)
		}
	}
	// Raising is allowed: an R1 stream becomes R3 when an R3 node ensures it.
	if _, err := r1.EnsureStream(ctx, jetstream.StreamConfig{Name: "RAISED", Subjects: []string{"raised.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r3.EnsureStream(ctx, jetstream.StreamConfig{Name: "RAISED", Subjects: []string{"raised.>"}}); err != nil {
		t.Fatal(err)
	}
	if got := replicas(t, ctx, r1, "RAISED"); got != 3 {
		t.Fatalf("RAISED has %d replicas, want 3", got)
	}
}

func replicas(t *testing.T, ctx context.Context, e *engine.Engine, stream string) int {
	t.Helper()
	s, err := e.JetStream().Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().Config.Replicas
}
