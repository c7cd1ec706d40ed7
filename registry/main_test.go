package registry

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/internal/enginetest"
)

func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	goleak.VerifyTestMain(m)
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newStore(t testing.TB, dir ...string) *Store {
	t.Helper()
	s, _ := newStoreEngine(t, dir...)
	return s
}

func newStoreEngine(t testing.TB, dir ...string) (*Store, *engine.Engine) {
	t.Helper()
	eng := enginetest.Start(t, dir...)
	s, err := OpenStore(ctxT(t), eng, StoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return s, eng
}

func reg(url string) *Registration { return &Registration{URL: url} }

// eventually polls cond every 20ms until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
