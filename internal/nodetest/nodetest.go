// Package nodetest runs a real Plexus node for tests outside the server
// package: every listener on a kernel-chosen loopback port, a temporary
// data dir, a quiet log, and a graceful stop when the test ends.
package nodetest

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/plexushq/plexus/server"
)

// Start runs a node with cfg. Empty fields get test defaults: DataDir a
// temp dir, AdminAddr and GatewayAddr "127.0.0.1:0", a discarded log, and
// a configuration file that samples every trace (tests look for the
// traces of the requests they make; the shipped default samples a
// tenth). Roles and AdminToken are taken as given (empty: all roles, a
// generated token; read it back with Node.Token).
func Start(t testing.TB, cfg server.Config) *server.Node {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.ConfigFile == "" {
		cfg.ConfigFile = filepath.Join(t.TempDir(), "plexus.yaml")
		if err := os.WriteFile(cfg.ConfigFile, []byte("telemetry:\n  sampleRatio: 1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if cfg.AdminAddr == "" {
		cfg.AdminAddr = "127.0.0.1:0"
	}
	if cfg.GatewayAddr == "" {
		cfg.GatewayAddr = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.PrintToken == nil {
		cfg.PrintToken = func(string, string) {}
	}
	n, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Stop(ctx); err != nil {
			t.Errorf("stop node: %v", err)
		}
	})
	return n
}
