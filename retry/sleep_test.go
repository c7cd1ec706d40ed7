package retry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/plexushq/plexus/retry"
)

func TestSleepEndsWithItsContext(t *testing.T) {
	if err := retry.Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("sleep: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := retry.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("sleep on an ended context: %v, want context.Canceled", err)
	}
	if err := retry.Sleep(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("zero sleep on an ended context: %v, want context.Canceled", err)
	}
	if err := retry.Sleep(context.Background(), -time.Second); err != nil {
		t.Fatalf("negative sleep: %v", err)
	}
}
