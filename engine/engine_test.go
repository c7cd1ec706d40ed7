package engine_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/plexushq/plexus/engine"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The embedded server's and nats.go's package-level helpers that live
		// for the whole process.
		goleak.IgnoreTopFunction("github.com/nats-io/nats-server/v2/server.(*Server).logRejectedTLSConns"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.ticketKeysRotation"),
	)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func start(t *testing.T, cfg engine.Config) *engine.Engine {
	t.Helper()
	cfg.Logger = quiet
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e, err := engine.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func stop(t *testing.T, e *engine.Engine) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	e := start(t, engine.Config{DataDir: dir})
	if !e.Embedded() || e.ClientURL() != "" {
		t.Fatalf("embedded=%v url=%q: want embedded without a listener", e.Embedded(), e.ClientURL())
	}
	kv, err := e.EnsureKV(ctx, jetstream.KeyValueConfig{Bucket: "t_state"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "k", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	s, err := e.EnsureStream(ctx, jetstream.StreamConfig{Name: "T_STATE", Subjects: []string{"t.state.>"}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := e.JetStream().Publish(ctx, "t.state.x", fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	_ = s
	stop(t, e)

	e = start(t, engine.Config{DataDir: dir})
	defer stop(t, e)
	// Ensuring again is idempotent and keeps the data.
	kv, err = e.EnsureKV(ctx, jetstream.KeyValueConfig{Bucket: "t_state"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := kv.Get(ctx, "k")
	if err != nil || string(got.Value()) != "v1" {
		t.Fatalf("kv after restart: %v %v", got, err)
	}
	s, err = e.EnsureStream(ctx, jetstream.StreamConfig{Name: "T_STATE", Subjects: []string{"t.state.>"}})
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil || info.State.Msgs != 10 {
		t.Fatalf("stream after restart: %+v %v", info, err)
	}
}

func TestListenAndExternal(t *testing.T) {
	port := freePort(t)
	dir := t.TempDir()
	a := start(t, engine.Config{DataDir: dir, Listen: fmt.Sprintf("127.0.0.1:%d", port), Sync: engine.SyncAlways})
	defer stop(t, a)
	if a.ClientURL() == "" {
		t.Fatal("no client URL with --nats-listen")
	}
	pw, err := os.ReadFile(filepath.Join(dir, engine.PasswordFile))
	if err != nil {
		t.Fatal(err)
	}
	b := start(t, engine.Config{URLs: []string{a.ClientURL()}, User: engine.ListenUser, Password: strings.TrimSpace(string(pw))})
	defer stop(t, b)
	if b.Embedded() {
		t.Fatal("external engine reports embedded")
	}
	ctx := context.Background()
	kvA, err := a.EnsureKV(ctx, jetstream.KeyValueConfig{Bucket: "shared"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kvA.Put(ctx, "x", []byte("from-a")); err != nil {
		t.Fatal(err)
	}
	kvB, err := b.EnsureKV(ctx, jetstream.KeyValueConfig{Bucket: "shared"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := kvB.Get(ctx, "x")
	if err != nil || string(got.Value()) != "from-a" {
		t.Fatalf("b sees %v %v", got, err)
	}
	if err := b.Ready(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  engine.Config
	}{
		{"bad sync", engine.Config{Sync: "sometimes"}},
		{"listen with external", engine.Config{URLs: []string{"nats://127.0.0.1:4222"}, Listen: "127.0.0.1:4222"}},
		{"bad listen", engine.Config{Listen: "nohostport"}},
		{"bad replicas", engine.Config{Replicas: 7}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestUnreachableExternalFails(t *testing.T) {
	port := freePort(t) // nothing listens there
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := engine.Start(ctx, engine.Config{URLs: []string{fmt.Sprintf("nats://127.0.0.1:%d", port)},
		ConnectTimeout: time.Second, Logger: quiet})
	if err == nil {
		t.Fatal("connected to nothing")
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
