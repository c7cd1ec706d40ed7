package gateway

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
)

// maxReplayBody is the largest body buffered so that an idempotent request
// can be sent again to another instance.
const maxReplayBody = 64 << 10

// reqBody is the request body as the tries see it: none, buffered (sent
// again on a retry) or streamed once. A streamed body records whether the
// transport read from it, so a try whose connection never opened can be
// repeated, and the client-side read error, so it is not blamed on the
// upstream.
type reqBody struct {
	buf    []byte
	stream io.ReadCloser
	n      int64 // content length, -1 unknown
	none   bool
	read   atomic.Bool
	err    atomic.Pointer[error]
}

var noBody = &reqBody{none: true}

// prepareBody applies the body limit (413 up front from Content-Length,
// and while streaming) and buffers small idempotent bodies for retries.
func prepareBody(ex *exchange, set *settings) (*reqBody, error) {
	r := ex.r
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return noBody, nil
	}
	limit := set.maxBody
	if limit > 0 && r.ContentLength > limit {
		return nil, errTooLarge(limit)
	}
	body := r.Body
	if limit > 0 && r.ContentLength < 0 {
		body = http.MaxBytesReader(ex.w, body, limit)
	}
	rb := &reqBody{n: r.ContentLength}
	if idempotent(r.Method) && r.ContentLength > 0 && r.ContentLength <= maxReplayBody {
		rb.buf = make([]byte, r.ContentLength)
		if _, err := io.ReadFull(body, rb.buf); err != nil {
			return nil, errBadBody(err)
		}
		return rb, nil
	}
	rb.stream = body
	return rb, nil
}

// forAttempt returns the body, length and GetBody of one try.
func (b *reqBody) forAttempt() (io.ReadCloser, int64, func() (io.ReadCloser, error)) {
	switch {
	case b.none:
		return nil, 0, nil
	case b.buf != nil:
		get := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b.buf)), nil }
		rc, _ := get()
		return rc, b.n, get
	default:
		return trackedBody{b}, b.n, nil
	}
}

func (b *reqBody) replayable() bool { return b.none || b.buf != nil }
func (b *reqBody) untouched() bool  { return !b.read.Load() }

// clientErr is the error reading the client's body, if any.
func (b *reqBody) clientErr() error {
	if p := b.err.Load(); p != nil {
		return *p
	}
	return nil
}

// trackedBody reads the client's body for the transport. Closing it is
// left to the server, so a try that never started leaves it intact.
type trackedBody struct{ b *reqBody }

func (t trackedBody) Read(p []byte) (int, error) {
	if !t.b.read.Load() {
		t.b.read.Store(true)
	}
	n, err := t.b.stream.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		t.b.err.CompareAndSwap(nil, &err)
	}
	return n, err
}

func (trackedBody) Close() error { return nil }
