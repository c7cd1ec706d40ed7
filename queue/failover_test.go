package queue

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/internal/clustertest"
	"github.com/plexushq/plexus/internal/enginetest"
)

// TestPublishRidesOutAFailover: a publish made while the engine is away
// (here: its only server killed, back 1.5s later) keeps trying with the
// same message id within its deadline and is stored once.
func TestPublishRidesOutAFailover(t *testing.T) {
	cl := clustertest.Start(t, clustertest.Options{Size: 1})
	eng := enginetest.StartConfig(t, engine.Config{URLs: cl.URLs(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	f := newFixtureOn(t, eng, nil)
	f.create("jobs", Config{})
	cl.Kill(0)
	back := make(chan struct{})
	go func() {
		defer close(back)
		time.Sleep(1500 * time.Millisecond)
		cl.Restart(0)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id, err := f.c.Publish(ctx, "jobs", Message{Payload: []byte(`{"during":"outage"}`)})
	<-back
	if err != nil {
		t.Fatalf("publish across the outage: %v", err)
	}
	ds, err := f.c.Receive(ctx, "jobs", ReceiveOptions{Max: 10, Wait: time.Second})
	if err != nil || len(ds) != 1 || ds[0].ID != id {
		t.Fatalf("queue holds %d messages (%v), want exactly the one published", len(ds), err)
	}
}
