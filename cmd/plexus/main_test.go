package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// buildBinary compiles the plexus command once per test binary run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "plexus")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestBindEnv(t *testing.T) {
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	a := fs.String("admin-token", "", "")
	b := fs.String("data-dir", "d", "")
	c := fs.Int("nats-replicas", 1, "")
	t.Setenv("PLEXUS_ADMIN_TOKEN", "from-env")
	t.Setenv("PLEXUS_DATA_DIR", "env-dir")
	t.Setenv("PLEXUS_NATS_REPLICAS", "3")
	if err := fs.Parse([]string{"--data-dir", "flag-dir"}); err != nil {
		t.Fatal(err)
	}
	if err := bindEnv(fs); err != nil {
		t.Fatal(err)
	}
	if *a != "from-env" || *b != "flag-dir" || *c != 3 {
		t.Fatalf("admin-token %q data-dir %q replicas %d: env must fill unset flags only", *a, *b, *c)
	}
	t.Setenv("PLEXUS_NATS_REPLICAS", "three")
	fs2 := pflag.NewFlagSet("y", pflag.ContinueOnError)
	fs2.Int("nats-replicas", 1, "")
	if err := bindEnv(fs2); err == nil || !strings.Contains(err.Error(), "PLEXUS_NATS_REPLICAS") {
		t.Fatalf("bad env value not reported: %v", err)
	}
}

// TestUpHealthAndGracefulStop runs the real binary: `plexus up` serves,
// `plexus health` exits 0, SIGTERM stops it with exit 0 in bounded time,
// and `plexus health` then exits 1.
func TestUpHealthAndGracefulStop(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	admin, gw := freeAddr(t), freeAddr(t)
	var stderr bytes.Buffer
	up := exec.Command(bin, "up", "--data-dir", t.TempDir(), "--admin-addr", admin, "--gateway-addr", gw)
	up.Env = append(os.Environ(), "PLEXUS_ADMIN_TOKEN=0123456789abcdef0123")
	up.Stderr = &stderr
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = up.Process.Kill(); _, _ = up.Process.Wait() })
	healthURL := "http://" + admin + "/health"
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := exec.Command(bin, "health", "-q", "--url", healthURL).Run(); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node never became healthy:\n%s", stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The token from the environment protects the admin API.
	req, _ := http.NewRequest(http.MethodGet, "http://"+admin+"/v1/services", nil)
	req.Header.Set("Authorization", "Bearer 0123456789abcdef0123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		t.Fatal("PLEXUS_ADMIN_TOKEN was not used")
	}

	start := time.Now()
	if err := up.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- up.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no exit within 20s of SIGTERM\n%s", stderr.String())
	}
	t.Logf("graceful stop took %v", time.Since(start))
	err = exec.Command(bin, "health", "-q", "--url", healthURL, "--timeout", "1s").Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("health of a stopped node: %v, want exit code 1", err)
	}
}

func TestVersion(t *testing.T) {
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"version"})
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), fmt.Sprintf("plexus %s ", version)) {
		t.Fatalf("version printed %q", out.String())
	}
}
