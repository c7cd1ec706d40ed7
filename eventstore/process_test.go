package eventstore_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/eventstore"
	"github.com/plexushq/plexus/internal/enginetest"
	"github.com/plexushq/plexus/internal/plexustest"
)

// TestHelperSubscriberProcess is not a test: it is the subscriber process
// the test below starts (os.Args[0] with PLEXUS_SUB_HELPER set). It writes
// the position of every event it handles to a file, one per line, and
// stops gracefully on SIGTERM.
func TestHelperSubscriberProcess(t *testing.T) {
	if os.Getenv("PLEXUS_SUB_HELPER") == "" {
		t.Skip("helper process")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	eng, err := engine.Start(ctx, engine.Config{URLs: []string{os.Getenv("PLEXUS_SUB_NATS")}, Token: subToken,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	s := eventstore.New(eng, eventstore.Config{})
	if err := s.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	f, err := os.OpenFile(os.Getenv("PLEXUS_SUB_OUT"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		os.Exit(2)
	}
	sub, err := s.Subscribe(ctx, "process", func(_ context.Context, e eventstore.Envelope) error {
		_, err := fmt.Fprintln(f, e.Position) // unbuffered: a kill -9 loses no line
		return err
	}, eventstore.SubscribeOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code := 0
	if err := sub.Stop(sctx); err != nil {
		code = 3
	}
	_ = eng.Stop(sctx)
	_ = f.Close()
	os.Exit(code)
}

func positionsIn(t *testing.T, path string) []uint64 {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	} else if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if p, err := strconv.ParseUint(sc.Text(), 10, 64); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// subToken is what the test's exposed engine requires of its subscriber processes.
const subToken = "subscriber-process-token"

func TestSubscriberProcessRestartsWithoutGapsOrDuplicates(t *testing.T) {
	if testing.Short() {
		t.Skip("runs subscriber processes")
	}
	addr := plexustest.FreeAddr(t)
	eng := enginetest.StartConfig(t, engine.Config{Listen: addr, Token: subToken})
	s := startStore(t, eng, eventstore.Config{})
	out := filepath.Join(t.TempDir(), "handled")
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperSubscriberProcess$")
		cmd.Env = append(os.Environ(), "PLEXUS_SUB_HELPER=1", "PLEXUS_SUB_NATS=nats://"+addr, "PLEXUS_SUB_OUT="+out)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	waitLines := func(n int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for len(positionsIn(t, out)) < n {
			if time.Now().After(deadline) {
				t.Fatalf("subscriber process handled %d events, want %d", len(positionsIn(t, out)), n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	want := appendN(t, s, 50, "item.added")
	p := start()
	waitLines(50) // caught up
	want = append(want, appendN(t, s, 20, "item.added")...)
	waitLines(70) // live
	if err := p.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	want = append(want, appendN(t, s, 10, "item.added")...) // while no subscriber runs
	p = start()
	waitLines(80)
	want = append(want, appendBatches(t, s, 2, 5)...) // appends of several events
	waitLines(90)
	time.Sleep(100 * time.Millisecond) // room for a stray duplicate
	got := positionsIn(t, out)
	for i, pos := range got {
		if i >= len(want) || pos != want[i] {
			t.Fatalf("line %d: position %d, want %v (gap or duplicate across a graceful restart)", i, pos, want[min(i, len(want)-1)])
		}
	}
	if len(got) != 90 {
		t.Fatalf("%d events handled, want 90", len(got))
	}

	// kill -9: no gaps; at most the events since the last checkpoint again.
	if err := p.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.Wait()
	want = append(want, appendBatches(t, s, 2, 5)...)
	p = start()
	defer func() { _ = p.Process.Signal(syscall.SIGTERM); _ = p.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		seen := map[uint64]int{}
		for _, pos := range positionsIn(t, out) {
			seen[pos]++
		}
		if len(seen) == 100 {
			for _, pos := range want {
				if seen[pos] == 0 {
					t.Fatalf("position %d never handled", pos)
				}
			}
			// The checkpoint follows the append that crosses 64 events.
			if dups := len(positionsIn(t, out)) - 100; dups > 64+5 {
				t.Fatalf("%d events handled twice after kill -9, want at most 69", dups)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after kill -9: %d distinct events handled, want 100", len(seen))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
