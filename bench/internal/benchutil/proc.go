// Package benchutil holds what the side-by-side benchmarks under bench/ share:
// starting and always stopping peer processes, installing Debian peers when
// missing, CPU pinning, latency percentiles, wrk output parsing, result
// tables and a description of the machine. It is not part of Plexus.
package benchutil

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Procs starts child processes in their own process groups and stops every
// one of them, by id, when Stop is called (also after Ctrl-C, see Main).
type Procs struct {
	mu    sync.Mutex
	procs []*Proc
	Dir   string // temp dir for configs, logs and data; removed by Stop
}

// Proc is one started child.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	Log  string // file with its stdout and stderr
	done chan struct{}
	err  error
}

// NewProcs makes a temp dir (world-readable, so peers that drop privileges
// can read their configs) and an empty process list.
func NewProcs(prefix string) (*Procs, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	return &Procs{Dir: dir}, nil
}

// Path joins name to the temp dir.
func (p *Procs) Path(name ...string) string {
	return filepath.Join(append([]string{p.Dir}, name...)...)
}

// WriteFile writes a config file into the temp dir and returns its path.
func (p *Procs) WriteFile(name, content string) (string, error) {
	path := p.Path(name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	return path, os.WriteFile(path, []byte(content), 0o644)
}

// Start runs argv (optionally pinned with taskset to cpus, "" = unpinned)
// with extra environment variables; output goes to <dir>/<name>.log.
func (p *Procs) Start(name, cpus string, env []string, argv ...string) (*Proc, error) {
	argv = Pin(cpus, argv...)
	logPath := p.Path(name + ".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	pr := &Proc{Name: name, Cmd: cmd, Log: logPath, done: make(chan struct{})}
	go func() {
		pr.err = cmd.Wait()
		f.Close()
		close(pr.done)
	}()
	p.mu.Lock()
	p.procs = append(p.procs, pr)
	p.mu.Unlock()
	return pr, nil
}

// Exited reports whether the process has ended.
func (pr *Proc) Exited() bool {
	select {
	case <-pr.done:
		return true
	default:
		return false
	}
}

// Tail returns the last n bytes of the process's log, for error messages.
func (pr *Proc) Tail(n int) string {
	b, _ := os.ReadFile(pr.Log)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// StopProc sends SIGTERM to the process group, waits up to grace, then SIGKILL.
func StopProc(pr *Proc, grace time.Duration) {
	if pr.Exited() {
		return
	}
	pgid := pr.Cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-pr.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-pr.done
	}
	// Children that left the group's leader behind (daemonising helpers).
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// Stop stops one process and forgets it.
func (p *Procs) Stop(pr *Proc) {
	StopProc(pr, 10*time.Second)
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, x := range p.procs {
		if x == pr {
			p.procs = append(p.procs[:i], p.procs[i+1:]...)
			break
		}
	}
}

// StopAll stops every process still running, newest first, and removes
// the temp dir unless keep is set.
func (p *Procs) StopAll(keep bool) {
	p.mu.Lock()
	procs := p.procs
	p.procs = nil
	p.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		StopProc(procs[i], 10*time.Second)
	}
	if !keep && p.Dir != "" {
		_ = os.RemoveAll(p.Dir)
	}
}

// Pin prefixes argv with taskset when cpus is set and taskset exists.
func Pin(cpus string, argv ...string) []string {
	if cpus == "" {
		return argv
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		return argv
	}
	return append([]string{"taskset", "-c", cpus}, argv...)
}

// Main runs body with a context cancelled on SIGINT/SIGTERM, and always
// runs cleanup afterwards (also when body panics or the user interrupts).
// It exits with status 1 on error.
func Main(body func(ctx context.Context) error, cleanup func()) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		return body(ctx)
	}()
	stop()
	cleanup()
	if err != nil {
		if errors.Is(err, context.Canceled) {
			log.Print("interrupted; everything started was stopped")
		} else {
			log.Printf("error: %v", err)
		}
		os.Exit(1)
	}
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// WaitTCP waits until addr accepts connections, pr ends, or timeout passes.
func WaitTCP(ctx context.Context, addr string, pr *Proc, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if pr != nil && pr.Exited() {
			return fmt.Errorf("%s exited: %s", pr.Name, pr.Tail(2000))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening after %s", addr, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// WaitHTTP waits until GET url answers with want status.
func WaitHTTP(ctx context.Context, url string, want int, pr *Proc, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: time.Second}
	last := ""
	for {
		resp, err := c.Get(url)
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 500))
			resp.Body.Close()
			if resp.StatusCode == want {
				return nil
			}
			last = fmt.Sprintf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
		} else {
			last = err.Error()
		}
		if pr != nil && pr.Exited() {
			return fmt.Errorf("%s exited: %s", pr.Name, pr.Tail(2000))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("GET %s: want %d after %s, last: %s", url, want, timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// StartCPUProfile writes a CPU profile of this process to path until the
// returned function is called; an empty path profiles nothing.
func StartCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		log.Printf("CPU profile written to %s (go tool pprof -top %s)", path, path)
	}, nil
}
