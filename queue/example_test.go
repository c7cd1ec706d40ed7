package queue_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/queue"
)

func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "plexus-example")
	defer os.RemoveAll(dir)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng, err := engine.Start(ctx, engine.Config{DataDir: dir, Logger: quiet})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer eng.Stop(ctx)

	qc, err := queue.New(ctx, eng.JetStream(), queue.Options{Logger: quiet})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer qc.Close()
	if _, _, err := qc.CreateQueue(ctx, "emails", queue.Config{}); err != nil {
		fmt.Println(err)
		return
	}
	_, _ = qc.Publish(ctx, "emails", queue.Message{ID: "welcome-1", Payload: []byte(`"hello"`)})
	_, _ = qc.Publish(ctx, "emails", queue.Message{ID: "urgent-1", Payload: []byte(`"now!"`), Priority: 9})

	done := make(chan struct{}, 2)
	sub, err := qc.Subscribe(ctx, "emails", func(ctx context.Context, d *queue.Delivery) error {
		fmt.Println(d.ID, string(d.Payload))
		done <- struct{}{}
		return nil // ack
	}, queue.SubscribeOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	<-done
	<-done
	stopCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = sub.Stop(stopCtx)
	// Output:
	// urgent-1 "now!"
	// welcome-1 "hello"
}
