package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"
)

// maxAccessFiles bounds the access log files kept open across reloads.
const maxAccessFiles = 8

// accessFiles keeps the access log files open, buffered, across reloads:
// a reload that names the same file keeps writing to it, and requests in
// flight under an old configuration never write to a closed file.
type accessFiles struct {
	mu      sync.Mutex
	files   map[string]*bufFile
	loggers map[io.Writer]*slog.Logger
}

func newAccessFiles() *accessFiles {
	return &accessFiles{files: map[string]*bufFile{}, loggers: map[io.Writer]*slog.Logger{}}
}

// bufFile is a buffered, lock-protected file; the gateway flushes it twice
// a second and at Stop, so a line costs a copy, not a system call.
type bufFile struct {
	mu sync.Mutex
	f  *os.File
	w  *bufio.Writer
}

func (b *bufFile) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.w.Write(p)
}

func (b *bufFile) flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.w.Flush()
}

func (a *accessFiles) logger(w io.Writer) *slog.Logger {
	if l, ok := a.loggers[w]; ok {
		return l
	}
	l := slog.New(slog.NewJSONHandler(w, nil))
	a.loggers[w] = l
	return l
}

// accessLogger returns the logger for the configured destination, nil
// when the access log is off.
func (g *Gateway) accessLogger(path string) (*slog.Logger, error) {
	a := g.logs
	a.mu.Lock()
	defer a.mu.Unlock()
	if g.opts.AccessLog != nil {
		return a.logger(g.opts.AccessLog), nil
	}
	switch path {
	case "":
		return nil, nil
	case "stdout":
		return a.logger(os.Stdout), nil
	case "stderr":
		return a.logger(os.Stderr), nil
	}
	if bf, ok := a.files[path]; ok {
		return a.logger(bf), nil
	}
	if len(a.files) >= maxAccessFiles {
		return nil, fmt.Errorf("more than %d access log files over the gateway's life; restart to use %s", maxAccessFiles, path)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	bf := &bufFile{f: f, w: bufio.NewWriterSize(f, 64<<10)}
	a.files[path] = bf
	return a.logger(bf), nil
}

func (a *accessFiles) flush() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, f := range a.files {
		_ = f.flush()
	}
}

func (a *accessFiles) close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var errs []error
	for p, f := range a.files {
		errs = append(errs, f.flush(), f.f.Close())
		delete(a.files, p)
	}
	return errors.Join(errs...)
}

// accessLog writes one JSON line per request.
func (g *Gateway) accessLog(ex *exchange, d time.Duration) {
	r := ex.r
	id := ""
	if len(ex.reqID) > 0 {
		id = ex.reqID[0]
	}
	ex.c.access.LogAttrs(context.Background(), slog.LevelInfo, "request",
		slog.String("id", id),
		slog.String("client", ex.clientIP),
		slog.String("method", r.Method),
		slog.String("host", r.Host),
		slog.String("path", r.URL.Path),
		slog.String("proto", r.Proto),
		slog.Int("status", ex.status),
		slog.Int64("bytes", ex.bytes),
		slog.Float64("ms", float64(d.Microseconds())/1000),
		slog.String("service", ex.service),
		slog.String("route", ex.route),
		slog.String("upstream", ex.upstream),
		slog.Int("attempts", ex.attempts),
	)
}
