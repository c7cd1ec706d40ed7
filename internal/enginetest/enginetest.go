// Package enginetest starts a real embedded engine for tests.
package enginetest

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/plexushq/plexus/engine"
)

// Start runs an embedded engine on a temporary data dir and stops it when
// the test ends. Pass a data dir to reuse state across restarts.
func Start(t testing.TB, dataDir ...string) *engine.Engine {
	t.Helper()
	dir := t.TempDir()
	if len(dataDir) > 0 {
		dir = dataDir[0]
	}
	return StartConfig(t, engine.Config{DataDir: dir})
}

// StartConfig runs an engine with cfg (DataDir defaults to a temp dir).
func StartConfig(t testing.TB, cfg engine.Config) *engine.Engine {
	t.Helper()
	if cfg.DataDir == "" && len(cfg.URLs) == 0 {
		cfg.DataDir = t.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e, err := engine.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start engine: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = e.Stop(ctx)
	})
	return e
}

// StartExternal runs a NATS server with JetStream on a loopback port (a
// stand-in for an external cluster a test can break: shut its JetStream
// down, or the server itself) and an engine connected to it with cfg.
func StartExternal(t testing.TB, cfg engine.Config) (*engine.Engine, *server.Server) {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("test NATS server did not start")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	cfg.URLs = []string{srv.ClientURL()}
	return StartConfig(t, cfg), srv
}
