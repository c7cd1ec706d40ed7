package queue_test

import (
	"context"
	"encoding/json"
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

// A queue's options are plain Go values: durations are time.Duration, a
// nil RetryDelay is the default (5s) and a zero one retries at once. In
// JSON and YAML they are duration strings.
func ExampleConfig() {
	cfg := queue.Config{
		MaxSize:           10000,
		Overflow:          queue.OverflowReject,
		RetryAttempts:     5,
		RetryDelay:        new(2 * time.Second),
		RetryBackoff:      queue.BackoffExponential,
		TTL:               24 * time.Hour,
		VisibilityTimeout: time.Minute,
	}
	b, _ := json.Marshal(cfg)
	fmt.Println(string(b))
	var back queue.Config
	_ = json.Unmarshal([]byte(`{"retryDelay":"0s","ttl":"1m"}`), &back)
	fmt.Println(*back.RetryDelay, back.TTL)
	// Output:
	// {"maxSize":10000,"overflow":"reject","retryAttempts":5,"retryBackoff":"exponential","retryDelay":"2s","ttl":"24h0m0s","visibilityTimeout":"1m0s"}
	// 0s 1m0s
}
