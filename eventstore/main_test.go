package eventstore_test

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	oteltrace "go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/eventstore"
	"github.com/plexushq/plexus/internal/enginetest"
	"github.com/plexushq/plexus/internal/plexustest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		plexustest.Cleanup()
		os.Exit(code)
	}))
}

// startStore runs a store on a fresh embedded engine (or on eng).
func startStore(t testing.TB, eng *engine.Engine, cfg eventstore.Config) *eventstore.Store {
	t.Helper()
	if eng == nil {
		eng = enginetest.Start(t)
	}
	s := eventstore.New(eng, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("stop store: %v", err)
		}
	})
	return s
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func ev(typ string, data any) eventstore.Event {
	b, _ := json.Marshal(data)
	return eventstore.Event{Type: typ, Data: b}
}

func mustAppend(t testing.TB, s *eventstore.Store, stream string, expected int64, events ...eventstore.Event) eventstore.AppendResult {
	t.Helper()
	res, err := s.Append(ctxT(t), stream, expected, events...)
	if err != nil {
		t.Fatalf("append to %s: %v", stream, err)
	}
	return res
}

func mustAppendCtx(t testing.TB, ctx context.Context, s *eventstore.Store, stream string, expected int64, events ...eventstore.Event) eventstore.AppendResult {
	t.Helper()
	res, err := s.Append(ctx, stream, expected, events...)
	if err != nil {
		t.Fatalf("append to %s: %v", stream, err)
	}
	return res
}

func traceIDOf(ctx context.Context) string {
	return oteltrace.SpanContextFromContext(ctx).TraceID().String()
}
