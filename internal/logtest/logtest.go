// Package logtest holds what tests need to read what a component logs.
package logtest

import (
	"bytes"
	"sync"
)

// Buffer is a log sink (an io.Writer for slog handlers) that tests read
// while the component writes. It is safe for concurrent use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
