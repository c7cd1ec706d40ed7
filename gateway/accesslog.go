package gateway

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// maxAccessFiles bounds the access log files kept open across reloads.
const maxAccessFiles = 8

// accessFiles keeps the access log files open, buffered, across reloads:
// a reload that names the same file keeps writing to it, and requests in
// flight under an old configuration never write to a closed file.
type accessFiles struct {
	mu      sync.Mutex
	files   map[string]*bufFile
	writers map[io.Writer]*lockedWriter
}

func newAccessFiles() *accessFiles {
	return &accessFiles{files: map[string]*bufFile{}, writers: map[io.Writer]*lockedWriter{}}
}

// lockedWriter serialises whole lines to one writer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
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

func (a *accessFiles) logger(w io.Writer) io.Writer {
	if bf, ok := w.(*bufFile); ok {
		return bf // locks itself
	}
	if l, ok := a.writers[w]; ok {
		return l
	}
	l := &lockedWriter{w: w}
	a.writers[w] = l
	return l
}

// accessLogger returns the writer for the configured destination, nil
// when the access log is off.
func (g *Gateway) accessLogger(path string) (io.Writer, error) {
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

// reopen closes and reopens every access log file, so a rotated file (moved
// away by logrotate) is replaced by a new one at the configured path.
// Writes wait on each file's lock meanwhile, so no line is lost or split.
func (a *accessFiles) reopen(log func(path string, err error)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for path, bf := range a.files {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			log(path, err) // keep writing to the old file
			continue
		}
		bf.mu.Lock()
		_ = bf.w.Flush()
		_ = bf.f.Close()
		bf.f = f
		bf.w.Reset(f)
		bf.mu.Unlock()
	}
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

var lineBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// accessLog writes one JSON line per request, in the shape of slog's JSON
// handler, encoded by hand: it runs on every request.
func (g *Gateway) accessLog(ex *exchange, d time.Duration) {
	r := ex.r
	id := ""
	if len(ex.reqID) > 0 {
		id = ex.reqID[0]
	}
	bp := lineBufs.Get().(*[]byte)
	b := append((*bp)[:0], `{"time":"`...)
	b = time.Now().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"INFO","msg":"request"`...)
	b = appendField(b, "id", id)
	b = appendField(b, "client", ex.clientIP)
	b = appendField(b, "method", r.Method)
	b = appendField(b, "host", r.Host)
	b = appendField(b, "path", r.URL.Path)
	b = appendField(b, "proto", r.Proto)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(ex.status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, ex.bytes, 10)
	b = append(b, `,"ms":`...)
	b = strconv.AppendFloat(b, float64(d.Microseconds())/1000, 'f', -1, 64)
	b = appendField(b, "service", ex.service)
	b = appendField(b, "route", ex.route)
	b = appendField(b, "upstream", ex.upstream)
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(ex.attempts), 10)
	b = append(b, "}\n"...)
	_, _ = ex.c.access.Write(b)
	*bp = b
	lineBufs.Put(bp)
}

func appendField(b []byte, key, value string) []byte {
	b = append(b, `,"`...)
	b = append(b, key...)
	b = append(b, `":`...)
	return appendJSONString(b, value)
}

// appendJSONString quotes s as a JSON string: quotes, backslashes and
// control characters escaped, invalid UTF-8 replaced by U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
