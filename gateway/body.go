package gateway

import (
	"bytes"
	"errors"
	"io"
	"net/http"

	"github.com/plexushq/plexus/internal/httpguard"
)

// maxBufferedBody is the largest body the gateway buffers: so that an
// idempotent request can be sent again to another instance, and so that a
// request may be a half-open breaker's probe only once its body is whole.
const maxBufferedBody = 64 << 10

// reqBody is the request body as the tries see it: none, buffered (sent
// again on a retry) or streamed once from the client under the listener's
// idle deadline (httpguard.Body), which also says whether the gateway is
// waiting on the client and how reading the client's body failed, so that
// neither is blamed on the upstream.
type reqBody struct {
	buf      []byte
	src      *httpguard.Body // nil when there is no body
	n        int64           // content length, -1 unknown
	buffered bool
	rd       bytes.Reader // the buffered body, rewound for every try
}

var noBody = &reqBody{}

// prepareBody applies the body limit (413 from Content-Length before
// anything is read, and while streaming) and guards the client's body; it
// reads nothing.
func (g *Gateway) prepareBody(ex *exchange, set *settings) (*reqBody, error) {
	r := ex.r
	if !httpguard.HasBody(r) {
		return noBody, nil
	}
	limit := set.maxBody
	if limit > 0 && r.ContentLength > limit {
		return nil, errTooLarge(limit)
	}
	src := r.Body
	if limit > 0 && r.ContentLength < 0 {
		src = http.MaxBytesReader(ex.w, src, limit)
	}
	ex.body = httpguard.NewBody(ex.w, src, g.bodyIdle)
	return &reqBody{src: ex.body, n: r.ContentLength}, nil
}

// errBodyTooBig says a body is over the size buffer was asked to hold.
var errBodyTooBig = errors.New("request body larger than the buffer")

// buffer reads the whole body into memory when it has at most max bytes;
// errBodyTooBig when it has more (a declared length says so before
// anything is read), or the *httpguard.ClientError of a failed read.
func (b *reqBody) buffer(max int64) error {
	if b.src == nil || b.buffered {
		return nil
	}
	if b.n > max {
		return errBodyTooBig
	}
	size := b.n
	if size < 0 {
		size = max + 1
	}
	buf := make([]byte, size)
	n, err := io.ReadFull(b.src, buf)
	if ce := b.src.Err(); ce != nil {
		return ce
	}
	switch {
	case err == nil && b.n < 0:
		return errBodyTooBig // max+1 bytes came
	case err == nil:
		var end [1]byte
		_, _ = b.src.Read(end[:]) // collects the end of the body, so the connection can be kept
	case b.n < 0 && (errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)):
	default:
		return &httpguard.ClientError{Err: err}
	}
	b.buf, b.n, b.buffered = buf[:n], int64(n), true
	return nil
}

// forAttempt returns the body and length of one try: the buffered bytes
// from their start (a retry sends them again), or the client's stream.
func (b *reqBody) forAttempt() (io.Reader, int64) {
	switch {
	case b.src == nil:
		return nil, 0
	case b.buffered:
		if b.n == 0 {
			return nil, 0
		}
		b.rd.Reset(b.buf)
		return &b.rd, b.n
	default:
		return b.src, b.n
	}
}

func (b *reqBody) replayable() bool { return b.src == nil || b.buffered }

// untouched reports that nothing of the client's body was consumed, so a
// try that never reached the upstream can be repeated.
func (b *reqBody) untouched() bool { return b.src == nil || b.buffered || !b.src.Started() }

// complete reports that the whole body is known: none, buffered, or read
// to its end.
func (b *reqBody) complete() bool { return b.src == nil || b.buffered || b.src.Complete() }

// waitingOnClient reports a read of the client's body in progress.
func (b *reqBody) waitingOnClient() bool { return b.src != nil && !b.buffered && b.src.Waiting() }

// clientErr is the error reading the client's body, if any.
func (b *reqBody) clientErr() error {
	if b.src == nil {
		return nil
	}
	if ce := b.src.Err(); ce != nil {
		return ce
	}
	return nil
}

// expire ends a wait on the client at once (a read in progress fails).
func (b *reqBody) expire() {
	if b.src != nil {
		b.src.Expire()
	}
}
