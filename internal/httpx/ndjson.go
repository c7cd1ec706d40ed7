package httpx

import (
	"context"
	"net/http"
	"strings"
	"time"
)

// NDJSONType is the media type of newline-delimited JSON answers: one
// JSON value per line.
const NDJSONType = "application/x-ndjson"

// ndjsonFlush is how much an NDJSON answer buffers before it writes.
const ndjsonFlush = 32 << 10

// NDJSON is a streamed answer of one JSON value per line, the bulk
// counterpart of SSE: nothing is sent until the first line (so a failure
// before it is still an ordinary problem answer), lines are written in
// chunks of ndjsonFlush bytes, each write under a write deadline. A stream
// that fails after it started is aborted (Abort): the client sees a
// truncated chunked body, an error, never a complete-looking answer.
type NDJSON struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	buf     []byte
	started bool
	err     error
}

// StartNDJSON prepares an NDJSON answer whose writes each get writeTimeout
// (DefaultSSEWriteTimeout when 0).
func StartNDJSON(w http.ResponseWriter, writeTimeout time.Duration) *NDJSON {
	if writeTimeout <= 0 {
		writeTimeout = DefaultSSEWriteTimeout
	}
	return &NDJSON{w: w, rc: http.NewResponseController(w), timeout: writeTimeout, buf: make([]byte, 0, ndjsonFlush+4096)}
}

// WantsNDJSON reports whether r asks for NDJSON (its Accept header names
// it).
func WantsNDJSON(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(v, ",") {
			mt, _, _ := strings.Cut(part, ";")
			if strings.TrimSpace(mt) == NDJSONType {
				return true
			}
		}
	}
	return false
}

// Buffer returns the line buffer to append one JSON value to; Line takes
// it back.
func (n *NDJSON) Buffer() []byte { return n.buf }

// Line ends the value appended to Buffer's slice b with a newline and
// writes the buffered lines once there are enough.
func (n *NDJSON) Line(b []byte) error {
	n.buf = append(b, '\n')
	if len(n.buf) >= ndjsonFlush {
		return n.Flush()
	}
	return n.err
}

// Started reports whether any of the answer was sent.
func (n *NDJSON) Started() bool { return n.started }

// Flush writes what is buffered (the answer's headers first).
func (n *NDJSON) Flush() error {
	if n.err != nil {
		return n.err
	}
	if !n.started {
		h := n.w.Header()
		h.Set("Content-Type", NDJSONType)
		h.Set("Cache-Control", "no-store")
		h.Set("X-Accel-Buffering", "no")
		n.started = true
		_ = n.rc.SetWriteDeadline(time.Now().Add(n.timeout))
		n.w.WriteHeader(http.StatusOK)
	}
	_ = n.rc.SetWriteDeadline(time.Now().Add(n.timeout))
	if len(n.buf) > 0 {
		_, n.err = n.w.Write(n.buf)
		n.buf = n.buf[:0]
	}
	if n.err == nil {
		n.err = n.rc.Flush()
	}
	return n.err
}

// Abort ends a started answer as failed: the connection is closed without
// the end of the chunked body. It does not return.
func (n *NDJSON) Abort() {
	panic(http.ErrAbortHandler)
}

// StreamContext ends when r's client goes or the server begins a graceful
// shutdown; the handler calls cancel when it returns.
func StreamContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.Context())
	if stopping := Stopping(r.Context()); stopping != nil {
		go func() {
			select {
			case <-stopping:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	return ctx, cancel
}
