package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// LockFile is the name of the data dir's lock file. It holds the pid of
// the process that has the lock.
const LockFile = "plexus.lock"

// DirLock is an exclusive lock on a data dir held by this process: two
// processes on one store would each acknowledge writes the other then
// overwrites. The operating system releases it when the process ends, so a
// crash never leaves a stale lock behind.
type DirLock struct {
	f   *os.File
	dir string
}

// LockDataDir creates dir when needed and takes its lock without waiting.
// When another process holds it the error matches ErrDataDirInUse and
// names the dir and the holder's pid.
func LockDataDir(dir string) (*DirLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("engine: data dir: %w", err)
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("engine: lock %s: %w", path, err)
	}
	held, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("engine: lock %s: %w", path, err)
	}
	if held {
		pid := readPid(path)
		f.Close()
		abs, _ := filepath.Abs(dir)
		return nil, fmt.Errorf("%w: %s is used by another plexus process (pid %s); stop it, or give this node its own --data-dir (or --nats to share that node's engine)",
			ErrDataDirInUse, abs, pid)
	}
	if err := writePid(f); err != nil {
		_ = unlock(f)
		f.Close()
		return nil, fmt.Errorf("engine: lock %s: %w", path, err)
	}
	return &DirLock{f: f, dir: dir}, nil
}

// Dir is the locked data dir.
func (l *DirLock) Dir() string { return l.dir }

// Release gives the lock up. It is safe to call more than once.
func (l *DirLock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := unlock(l.f)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}

func writePid(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		return err
	}
	return f.Sync()
}

// readPid reads the holder's pid for the message; "unknown" when the file
// cannot be read (the holder may be writing it at this very moment).
func readPid(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "unknown"
	}
	if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
		return strconv.Itoa(pid)
	}
	return "unknown"
}
