package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/internal/plexustest"
)

func tryStart(t *testing.T, cfg Config) (*Node, error) {
	t.Helper()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = n.Start(ctx)
	if err == nil {
		t.Cleanup(func() { _ = n.Stop(context.Background()) })
	}
	return n, err
}

// TestSecondNodeOnOneDataDirRefused: a second node with its own engine on
// a data dir in use is refused before it binds a port or opens the store.
func TestSecondNodeOnOneDataDirRefused(t *testing.T) {
	dir := t.TempDir()
	startNode(t, Config{DataDir: dir, Roles: []string{RoleControl}})
	port := plexustest.FreeAddr(t)
	_, err := tryStart(t, Config{DataDir: dir, Roles: []string{RoleGateway}, AdminAddr: port, GatewayAddr: "127.0.0.1:0"})
	if !errors.Is(err, engine.ErrDataDirInUse) {
		t.Fatalf("second node on %s: %v, want ErrDataDirInUse", dir, err)
	}
	ln, lerr := net.Listen("tcp", port) // the refused node left its port alone
	if lerr != nil {
		t.Fatalf("port %s taken by the refused node: %v", port, lerr)
	}
	ln.Close()
}

// TestBusyPortFailsBeforeTheStoreIsOpened: a start that fails on a busy
// port does not open (and recover) the store first.
func TestBusyPortFailsBeforeTheStoreIsOpened(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	_, err = tryStart(t, Config{DataDir: dir, AdminAddr: busy.Addr().String(), GatewayAddr: "127.0.0.1:0"})
	if err == nil || !strings.Contains(err.Error(), busy.Addr().String()) {
		t.Fatalf("start on a busy port: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "jetstream")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the store was opened before the port check: %v", err)
	}
	// The failed start released the dir.
	startNode(t, Config{DataDir: dir})
}
