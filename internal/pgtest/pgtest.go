// Package pgtest starts a throwaway PostgreSQL server for tests, from
// Debian's postgresql binaries, on a loopback port with its data in a
// temporary directory, and stops it when the test ends.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// RequireEnv, set to 1, makes a missing PostgreSQL fail the test instead
// of skipping it (scripts/test.sh sets it; scripts/test-deps.sh installs
// Debian's postgresql).
const RequireEnv = "PLEXUS_REQUIRE_POSTGRES"

// Start runs a server for t and answers its URL (user postgres, database
// postgres, no password). It is stopped and its files removed at cleanup.
func Start(t testing.TB) string {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(bins) == 0 {
		msg := "PostgreSQL is not installed (apt-get install postgresql; scripts/test-deps.sh does it)"
		if os.Getenv(RequireEnv) == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	bindir := filepath.Dir(bins[len(bins)-1])
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	prefix, err := dropRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	initdb := append(append([]string{}, prefix...), filepath.Join(bindir, "initdb"), "-D", data,
		"-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
	if out, err := exec.Command(initdb[0], initdb[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v: %s", err, out)
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		t.Fatal(err)
	}
	argv := append(append([]string{}, prefix...), filepath.Join(bindir, "postgres"), "-D", data,
		"-h", "127.0.0.1", "-p", strconv.Itoa(port), "-k", dir, "-c", "fsync=off", "-c", "max_connections=30")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("postgres: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	t.Cleanup(func() { stop(cmd, exited) })
	url := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	if err := waitConnect(url, exited, 30*time.Second); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "postgres.log"))
		t.Fatalf("postgres: %v\n%s", err, log)
	}
	return url
}

// dropRoot makes dir usable by the postgres user and answers the command
// prefix that runs as it, when we are root (PostgreSQL refuses root).
func dropRoot(dir string) ([]string, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs the postgres user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	return []string{"runuser", "-u", "postgres", "--"}, nil
}

// stop asks for a fast shutdown (SIGINT), then kills the process group.
func stop(cmd *exec.Cmd, exited <-chan struct{}) {
	pg := cmd.Process.Pid
	_ = syscall.Kill(-pg, syscall.SIGINT)
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-pg, syscall.SIGKILL)
		<-exited
	}
}

func waitConnect(url string, exited <-chan struct{}, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := pgx.Connect(ctx, url)
		if err == nil {
			err = c.Close(ctx)
			cancel()
			return err
		}
		cancel()
		select {
		case <-exited:
			return errors.New("postgres exited")
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not accepting connections within %s: %w", d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
