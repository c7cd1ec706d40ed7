package server

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

// TokenFile is the admin token's file name inside the data dir.
const TokenFile = "admin-token"

// loadOrCreateToken returns the token in dataDir/admin-token, creating it
// (mode 0600) when absent. created reports whether it was generated now.
func loadOrCreateToken(dataDir string) (token, path string, created bool, err error) {
	path = filepath.Join(dataDir, TokenFile)
	b, err := os.ReadFile(path)
	if err == nil {
		token = strings.TrimSpace(string(b))
		if len(token) < 16 {
			return "", path, false, fmt.Errorf("admin token in %s is shorter than 16 characters", path)
		}
		return token, path, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", path, false, fmt.Errorf("reading admin token: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", path, false, fmt.Errorf("data dir: %w", err)
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", path, false, err
	}
	token = "plx_" + hex.EncodeToString(raw)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) { // another node created it first
			return loadOrCreateToken(dataDir)
		}
		return "", path, false, fmt.Errorf("writing admin token: %w", err)
	}
	if _, err := f.WriteString(token + "\n"); err != nil {
		f.Close()
		return "", path, false, err
	}
	return token, path, true, f.Close()
}

// ReadToken reads the token a node stored in dataDir, for CLI commands.
func ReadToken(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, TokenFile))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}
