// Package secretfile keeps the secrets a node generates for itself (the
// admin token, the embedded engine's password) in files of its data dir:
// created once with mode 0600, read back on every later start.
package secretfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// MinLen is the shortest secret a file may hold.
const MinLen = 16

// LoadOrCreate returns the secret in dir/name, creating it (mode 0600,
// prefix and 48 random hex characters) when absent. created reports
// whether it was generated now. what names the secret in errors.
func LoadOrCreate(dir, name, prefix, what string) (secret, path string, created bool, err error) {
	path = filepath.Join(dir, name)
	b, err := os.ReadFile(path)
	if err == nil {
		secret = strings.TrimSpace(string(b))
		if len(secret) < MinLen {
			return "", path, false, fmt.Errorf("%s in %s is shorter than %d characters", what, path, MinLen)
		}
		return secret, path, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", path, false, fmt.Errorf("reading %s: %w", what, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", path, false, fmt.Errorf("data dir: %w", err)
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", path, false, err
	}
	secret = prefix + hex.EncodeToString(raw)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) { // another process created it first
			return LoadOrCreate(dir, name, prefix, what)
		}
		return "", path, false, fmt.Errorf("writing %s: %w", what, err)
	}
	if _, err := f.WriteString(secret + "\n"); err != nil {
		f.Close()
		return "", path, false, err
	}
	return secret, path, true, f.Close()
}

// Read returns the secret in dir/name.
func Read(dir, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}
