package h1

import (
	"io"
	"time"
)

var zeroTime time.Time

// body reads an answer's body from its connection, and gives the
// connection back to the pool when it was read to its end and the
// exchange allows another one (or closes it otherwise).
type body struct {
	resp        *Response
	pc          *pconn
	stop        func() bool // stops the request context's abort
	wdone       chan error  // a body writer still running, nil when none
	writeFailed bool
	left        int64 // bytes left of a body framed by its length
	chunks      chunkedReader
	done        bool // read to the end (or given up); pc released
	err         error
}

func (b *body) start(pc *pconn, stop func() bool, wdone chan error, writeFailed bool) {
	b.pc, b.stop, b.wdone, b.writeFailed = pc, stop, wdone, writeFailed
	r := b.resp
	switch {
	case r.Status == 101:
		r.close = true // kept for Hijack
	case r.noBody:
		b.finish(true)
	case r.chunked:
	case r.ContentLength >= 0:
		b.left = r.ContentLength
		if b.left == 0 {
			b.finish(true)
		}
	default:
		b.left = -1
	}
}

// Read reads the body as it arrives: every call returns what one read of
// the connection gave, so streams (SSE, chunked) pass without delay.
func (b *body) Read(p []byte) (int, error) {
	switch {
	case b.err != nil:
		return 0, b.err
	case b.done:
		return 0, io.EOF
	case len(p) == 0:
		return 0, nil
	case b.resp.chunked:
		return b.readChunked(p)
	case b.left < 0: // until the connection closes
		n, err := b.pc.br.Read(p)
		if err == io.EOF {
			b.finish(false)
			return n, io.EOF
		}
		if err != nil {
			return n, b.fail(err)
		}
		return n, nil
	}
	n, err := readLength(b.pc.br, p, &b.left)
	if b.left == 0 {
		b.finish(true)
		return n, nil
	}
	if err != nil {
		return n, b.fail(err)
	}
	return n, nil
}

func (b *body) readChunked(p []byte) (int, error) {
	n, err := b.chunks.read(b.pc.br, p)
	switch {
	case err == io.EOF:
		var terr error
		if b.resp.Trailer, terr = readTrailer(&b.pc.lr, b.pc.h.c.cfg.MaxHeaderBytes, b.resp.Trailer); terr != nil {
			return 0, b.fail(ErrMalformedResponse)
		}
		b.finish(true)
		return 0, io.EOF
	case err == errMalformedChunk:
		return 0, b.fail(ErrMalformedResponse)
	case err != nil:
		return 0, b.fail(err)
	}
	return n, nil
}

// fail ends the body with err and closes the connection.
func (b *body) fail(err error) error {
	b.err = err
	b.finish(false)
	return err
}

// finish releases the connection: back to the pool when reuse holds and
// the exchange ended cleanly on both sides, closed otherwise.
func (b *body) finish(reuse bool) {
	if b.done {
		return
	}
	b.done = true
	pc := b.pc
	b.pc = nil
	if pc == nil {
		return
	}
	if !b.stop() { // the request's context ended: the connection was cut
		reuse = false
	}
	if b.wdone != nil {
		select {
		case err := <-b.wdone:
			reuse = reuse && err == nil
		default:
			reuse = false // the upstream answered before the request body ended
		}
	}
	if reuse && !b.writeFailed && !b.resp.close {
		pc.h.put(pc)
	} else {
		pc.close()
	}
	pc.h.inflight.Add(-1)
}

// Close ends the body; unread bytes close the connection.
func (b *body) Close() error {
	if !b.done {
		b.finish(false)
		if b.err == nil {
			b.err = errBodyClosed
		}
	}
	return nil
}

var errBodyClosed = errorString("h1: read on a closed body")
