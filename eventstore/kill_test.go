package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/plexushq/plexus/eventstore"
)

const killToken = "kill-test-token-0123456789"

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startPlexus runs `plexus up` as a child process and waits until it is ready.
func startPlexus(t *testing.T, bin, dataDir, admin, gateway string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "up", "--data-dir", dataDir, "--admin-addr", admin, "--gateway-addr", gateway,
		"--admin-token", killToken, "--log-level", "error")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + admin + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return cmd
			}
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("plexus did not become ready: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type acked struct {
	stream  string
	version int64
	id      string
}

func TestKill9DuringAppendsLosesNoAcknowledgedEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the plexus binary")
	}
	dir := t.TempDir()
	bin := os.Getenv("PLEXUS_TEST_BIN") // a prebuilt binary saves the build
	if bin == "" {
		bin = filepath.Join(dir, "plexus")
		start := time.Now()
		build := exec.Command("go", "build", "-o", bin, "github.com/plexushq/plexus/cmd/plexus")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build: %v\n%s", err, out)
		}
		t.Logf("built plexus in %v", time.Since(start).Round(time.Millisecond))
	}
	data := filepath.Join(dir, "data")
	admin, gateway := freeAddr(t), freeAddr(t)
	proc := startPlexus(t, bin, data, admin, gateway)

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := eventstore.NewClient("http://"+admin, killToken, &http.Client{Transport: tr, Timeout: 5 * time.Second})
	const writers = 8
	var mu sync.Mutex
	var acks []acked
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := fmt.Sprintf("writer-%d", w)
			version := int64(0)
			for i := 0; ctx.Err() == nil; i++ {
				n := 1 + i%3
				events := make([]eventstore.Event, n)
				for j := range events {
					events[j] = eventstore.Event{Type: "k.appended", ID: fmt.Sprintf("%s-%d-%d", stream, i, j), Data: []byte(fmt.Sprint(i))}
				}
				res, err := c.Append(ctx, stream, version, events...)
				if err != nil {
					return // the node is gone
				}
				mu.Lock()
				for j, e := range events {
					acks = append(acks, acked{stream, version + int64(j) + 1, e.ID})
				}
				mu.Unlock()
				if res.Version != version+int64(n) {
					t.Errorf("%s: version %d after appending %d at %d", stream, res.Version, n, version)
					return
				}
				version = res.Version
			}
		}()
	}
	for {
		time.Sleep(100 * time.Millisecond)
		mu.Lock()
		n := len(acks)
		mu.Unlock()
		if n >= 400 {
			break
		}
	}
	if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = proc.Wait()
	cancel()
	wg.Wait()
	tr.CloseIdleConnections()

	proc = startPlexus(t, bin, data, admin, gateway)
	defer func() {
		_ = proc.Process.Signal(syscall.SIGTERM)
		_ = proc.Wait()
	}()
	stored := map[string]map[int64]string{}
	rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer rcancel()
	for w := range writers {
		stream := fmt.Sprintf("writer-%d", w)
		stored[stream] = map[int64]string{}
		for from := int64(1); ; {
			evs, err := c.ReadStream(rctx, stream, from, 1000)
			if errors.Is(err, eventstore.ErrStreamNotFound) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range evs {
				if e.Version != from {
					t.Fatalf("%s: version %d where %d was expected (gap)", stream, e.Version, from)
				}
				stored[stream][e.Version] = e.ID
				from++
			}
			if len(evs) < 1000 {
				break
			}
		}
	}
	for _, a := range acks {
		if got := stored[a.stream][a.version]; got != a.id {
			t.Fatalf("acknowledged %s version %d (%s) lost after kill -9: found %q", a.stream, a.version, a.id, got)
		}
	}
	t.Logf("%d acknowledged events all present after kill -9", len(acks))
}
