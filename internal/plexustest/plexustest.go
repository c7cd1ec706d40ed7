// Package plexustest runs the real plexus binary as a child process for
// fault tests: it builds it once per test binary, starts `plexus up` (or
// any command line) on loopback ports of the kernel's choosing, waits for
// /ready, talks to the admin API, and kills or stops the child when the
// test ends.
package plexustest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Token is the admin token the children run with.
const Token = "plexustest-token-0123456789"

var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
	out  []byte
}

// Binary returns the path of a plexus binary built from this module (once
// per test binary; PLEXUS_TEST_BIN names a prebuilt one). Call Cleanup
// from TestMain to remove it.
func Binary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("fault test: builds and runs the plexus binary")
	}
	if b := os.Getenv("PLEXUS_TEST_BIN"); b != "" {
		return b
	}
	build.once.Do(func() {
		if build.dir, build.err = os.MkdirTemp("", "plexustest-"); build.err != nil {
			return
		}
		build.bin = filepath.Join(build.dir, "plexus")
		cmd := exec.Command("go", "build", "-o", build.bin, "github.com/plexushq/plexus/cmd/plexus")
		build.out, build.err = cmd.CombinedOutput()
	})
	if build.err != nil {
		t.Fatalf("build plexus: %v\n%s", build.err, build.out)
	}
	return build.bin
}

// Cleanup removes the binary Binary built.
func Cleanup() {
	if build.dir != "" {
		_ = os.RemoveAll(build.dir)
	}
}

// FreeAddr is a loopback address whose port was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Proc is a child plexus process.
type Proc struct {
	Cmd   *exec.Cmd
	Admin string // base URL of the admin listener
	Out   *Output
	done  chan struct{}
	err   error
}

// Output collects a child's stdout and stderr.
type Output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// Spawn starts bin with args and does not wait for it; the test's end
// kills it if it still runs.
func Spawn(t testing.TB, bin string, args ...string) *Proc {
	t.Helper()
	p := &Proc{Cmd: exec.Command(bin, args...), Out: &Output{}, done: make(chan struct{})}
	p.Cmd.Stdout, p.Cmd.Stderr = p.Out, p.Out
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.Cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.Kill() })
	return p
}

// Up starts `plexus up` on dataDir with fresh loopback ports and the test
// token, plus extra flags, and waits until it is ready.
func Up(t testing.TB, bin, dataDir string, extra ...string) *Proc {
	t.Helper()
	admin := FreeAddr(t)
	args := append([]string{"up", "--data-dir", dataDir, "--admin-addr", admin, "--gateway-addr", FreeAddr(t),
		"--admin-token", Token, "--log-level", "warn"}, extra...)
	p := Spawn(t, bin, args...)
	p.Admin = "http://" + admin
	p.WaitReady(t, 30*time.Second)
	return p
}

// WaitReady waits until /ready answers 200.
func (p *Proc) WaitReady(t testing.TB, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		code, _, _ := p.Call(t, "GET", "/ready", nil)
		if code == 200 {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("plexus exited (%v) before it was ready:\n%s", p.err, p.Out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("plexus not ready after %s:\n%s", d, p.Out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Exited waits up to d for the process to end and returns its error
// (nil: exit 0); ok is false when it still runs.
func (p *Proc) Exited(d time.Duration) (err error, ok bool) {
	select {
	case <-p.done:
		return p.err, true
	case <-time.After(d):
		return nil, false
	}
}

// Kill ends the process with SIGKILL (no-op when it ended).
func (p *Proc) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop ends the process with SIGTERM, waiting up to 30s, then SIGKILL.
func (p *Proc) Stop() {
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	if _, ok := p.Exited(30 * time.Second); !ok {
		p.Kill()
	}
}

var client = &http.Client{Timeout: 30 * time.Second}

// Call sends a request to the admin API with the token (and in, when not
// nil, as JSON) and returns the status, headers and body; status 0 when
// the node did not answer.
func (p *Proc) Call(t testing.TB, method, path string, in any) (int, http.Header, []byte) {
	t.Helper()
	return p.CallContext(context.Background(), method, path, in)
}

// CallContext is Call for other goroutines (no testing.TB).
func (p *Proc) CallContext(ctx context.Context, method, path string, in any) (int, http.Header, []byte) {
	var body io.Reader
	if in != nil {
		if raw, ok := in.(string); ok {
			body = bytes.NewReader([]byte(raw))
		} else {
			b, _ := json.Marshal(in)
			body = bytes.NewReader(b)
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, p.Admin+path, body)
	if err != nil {
		return 0, nil, nil
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+Token)
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}
