package engine_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/internal/enginetest"
)

// TestSecondEngineOnOneDataDirRefused: two processes (here two engines) on
// one store would each acknowledge writes the other overwrites. The second
// is refused at once, naming the dir and the holder's pid, and the store is
// usable again once the first stops.
func TestSecondEngineOnOneDataDirRefused(t *testing.T) {
	dir := t.TempDir()
	a := start(t, engine.Config{DataDir: dir})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := engine.Start(ctx, engine.Config{DataDir: dir, Logger: quiet})
	if err == nil {
		stop(t, b)
		t.Fatal("a second engine opened a data dir in use")
	}
	abs, _ := filepath.Abs(dir)
	if !errors.Is(err, engine.ErrDataDirInUse) || !strings.Contains(err.Error(), abs) ||
		!strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("error %q: want ErrDataDirInUse naming %s and pid %d", err, abs, os.Getpid())
	}
	stop(t, a)
	c := start(t, engine.Config{DataDir: dir})
	stop(t, c)
}

func TestSyncTakesADuration(t *testing.T) {
	for _, tc := range []struct {
		in     string
		want   time.Duration
		always bool
		bad    bool
	}{
		{"", engine.DefaultSyncInterval, false, false},
		{"interval", engine.DefaultSyncInterval, false, false},
		{"always", 0, true, false},
		{"100ms", 100 * time.Millisecond, false, false},
		{"1s", time.Second, false, false},
		{"0s", 0, false, true},
		{"-1s", 0, false, true},
		{"3m", 0, false, true},
		{"sometimes", 0, false, true},
	} {
		d, always, err := engine.ParseSync(tc.in)
		if (err != nil) != tc.bad || d != tc.want || always != tc.always {
			t.Errorf("ParseSync(%q) = %s %v %v", tc.in, d, always, err)
		}
		if verr := (engine.Config{Sync: tc.in}).Validate(); (verr != nil) != tc.bad {
			t.Errorf("Validate(sync %q) = %v", tc.in, verr)
		}
	}
	e := start(t, engine.Config{DataDir: t.TempDir(), Sync: "100ms"})
	defer stop(t, e)
	if got := engine.SyncIntervalOf(e); got != 100*time.Millisecond {
		t.Fatalf("engine sync interval %s, want 100ms", got)
	}
}

func TestClassify(t *testing.T) {
	api := func(code int, errCode jetstream.ErrorCode) error {
		return fmt.Errorf("publish: %w", &jetstream.APIError{Code: code, ErrorCode: errCode, Description: "x"})
	}
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"request timeout", fmt.Errorf("x: %w", nats.ErrTimeout), engine.ErrUnavailable},
		{"deadline", context.DeadlineExceeded, engine.ErrUnavailable},
		{"no responders", nats.ErrNoResponders, engine.ErrUnavailable},
		{"no stream response", jetstream.ErrNoStreamResponse, engine.ErrUnavailable},
		{"connection closed", nats.ErrConnectionClosed, engine.ErrUnavailable},
		{"jetstream not enabled", jetstream.ErrJetStreamNotEnabled, engine.ErrUnavailable},
		{"no leader", api(500, jetstream.ErrorCode(server.JSClusterNotLeaderErr)), engine.ErrUnavailable},
		{"the same id being stored", api(409, jetstream.ErrorCode(server.JSStreamDuplicateMessageConflict)), engine.ErrUnavailable},
		{"max payload", fmt.Errorf("x: %w", nats.ErrMaxPayload), engine.ErrTooLarge},
		{"message over the stream's limit", api(400, jetstream.ErrorCode(server.JSStreamMessageExceedsMaximumErr)), engine.ErrTooLarge},
		{"temporarily unavailable", api(503, jetstream.ErrorCode(nats.JSErrCodeJetStreamNotAvailable)), engine.ErrUnavailable},
		{"insufficient resources", api(503, jetstream.ErrorCode(nats.JSErrCodeInsufficientResourcesErr)), engine.ErrStorageFull},
		{"storage exceeded", api(500, jetstream.ErrorCode(server.JSStorageResourcesExceededErr)), engine.ErrStorageFull},
		{"legacy api error", &nats.APIError{Code: 503, ErrorCode: nats.JSErrCodeInsufficientResourcesErr}, engine.ErrStorageFull},
		{"not found stays", jetstream.ErrStreamNotFound, nil},
		{"wrong last sequence stays", api(400, jetstream.JSErrCodeStreamWrongLastSequence), nil},
		{"client gone stays", context.Canceled, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := engine.Classify(tc.err)
			if !errors.Is(got, tc.err) {
				t.Errorf("%v no longer matches the error it classifies", got)
			}
			for _, s := range []error{engine.ErrUnavailable, engine.ErrStorageFull, engine.ErrTooLarge} {
				if errors.Is(got, s) != (s == tc.want) {
					t.Errorf("Classify(%v) = %v: matches %v = %v", tc.err, got, s, errors.Is(got, s))
				}
			}
		})
	}
}

// TestDiskBelowReserveStopsWrites: with less free space than the reserve
// the engine says so (status, Ready, Writable) instead of letting writes
// run into a full disk; with the guard off it is writable.
func TestDiskBelowReserveStopsWrites(t *testing.T) {
	e := start(t, engine.Config{DataDir: t.TempDir(), DiskReserve: 1 << 60})
	defer stop(t, e)
	st := e.Status()
	if st.Writable || !st.StorageFull || st.DiskFree <= 0 || st.DiskReserve != 1<<60 || !strings.Contains(st.Reason, "reserve") {
		t.Fatalf("status %+v: want storage full", st)
	}
	if err := e.Writable(); !errors.Is(err, engine.ErrStorageFull) {
		t.Fatalf("Writable = %v", err)
	}
	if err := e.Ready(context.Background()); !errors.Is(err, engine.ErrStorageFull) {
		t.Fatalf("Ready = %v", err)
	}
	off := start(t, engine.Config{DataDir: t.TempDir(), DiskReserve: -1})
	defer stop(t, off)
	if err := off.Writable(); err != nil || !off.Status().Writable {
		t.Fatalf("guard off: %v %+v", err, off.Status())
	}
}

// TestFullDiskStopsThenRecoversWithNothingLost fills a real (tmpfs) disk
// under the embedded engine without the reserve: the write that hits the
// full disk fails, the engine reports itself not writable, and once space
// is freed it restarts JetStream by itself and every acknowledged message
// is there.
func TestFullDiskStopsThenRecoversWithNothingLost(t *testing.T) {
	disk := enginetest.Tmpfs(t, 32<<20)
	e := start(t, engine.Config{DataDir: filepath.Join(disk, "data"), DiskReserve: -1, CheckInterval: 50 * time.Millisecond})
	defer stop(t, e)
	ctx := context.Background()
	if _, err := e.EnsureStream(ctx, jetstream.StreamConfig{Name: "FULL", Subjects: []string{"full.>"}}); err != nil {
		t.Fatal(err)
	}
	js := e.JetStream()
	acked := 0
	publish := func() error {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err := js.Publish(pctx, "full.x", make([]byte, 4096))
		if err == nil {
			acked++
		}
		return err
	}
	for range 100 {
		if err := publish(); err != nil {
			t.Fatal(err)
		}
	}
	filler := enginetest.Fill(t, disk)
	var failed error
	for range 200 {
		if failed = publish(); failed != nil {
			break
		}
	}
	if failed == nil {
		t.Fatal("200 publishes of 4 KiB went through on a full disk")
	}
	waitStatus(t, e, false)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, e, true)
	if err := publish(); err != nil {
		t.Fatalf("publish after space was freed: %v", err)
	}
	s, err := js.Stream(ctx, "FULL")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("acknowledged %d, stored %d, first failure: %v", acked, s.CachedInfo().State.Msgs, failed)
	if got := s.CachedInfo().State.Msgs; got < uint64(acked) {
		t.Fatalf("%d acknowledged, %d stored: acknowledged messages lost", acked, got)
	}
}

func waitStatus(t *testing.T, e *engine.Engine, writable bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for e.Status().Writable != writable {
		if time.Now().After(deadline) {
			t.Fatalf("engine status %+v: want writable=%v", e.Status(), writable)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestExternalEngineWithoutJetStreamIsNotWritable: a server whose
// JetStream is gone (no leader, disabled) makes the engine not writable and
// not ready, with ErrUnavailable.
func TestExternalEngineWithoutJetStreamIsNotWritable(t *testing.T) {
	e, srv := enginetest.StartExternal(t, engine.Config{CheckInterval: 50 * time.Millisecond})
	if err := e.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := srv.ShutdownJetStream(); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, e, false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.Ready(ctx); !errors.Is(err, engine.ErrUnavailable) {
		t.Fatalf("Ready = %v, want ErrUnavailable", err)
	}
}
