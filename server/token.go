package server

import (
	"github.com/plexushq/plexus/internal/secretfile"
)

// TokenFile is the admin token's file name inside the data dir.
const TokenFile = "admin-token"

// loadOrCreateToken returns the token in dataDir/admin-token, creating it
// (mode 0600) when absent. created reports whether it was generated now.
func loadOrCreateToken(dataDir string) (token, path string, created bool, err error) {
	return secretfile.LoadOrCreate(dataDir, TokenFile, "plx_", "admin token")
}

// ReadToken reads the token a node stored in dataDir, for CLI commands.
func ReadToken(dataDir string) (string, error) {
	return secretfile.Read(dataDir, TokenFile)
}
