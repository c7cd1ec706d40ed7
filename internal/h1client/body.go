package h1client

import (
	"bytes"
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
	left        int64 // bytes left of the body (by length) or of the chunk
	state       int8  // chunked: 0 size line next, 1 in data, 2 CRLF next
	done        bool  // read to the end (or given up); pc released
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
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.pc.br.Read(p)
	b.left -= int64(n)
	if b.left == 0 {
		b.finish(true)
		return n, nil
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return n, b.fail(err)
	}
	return n, nil
}

func (b *body) readChunked(p []byte) (int, error) {
	br := b.pc.br
	for {
		switch b.state {
		case 0:
			size, err := b.chunkSize()
			if err != nil {
				return 0, b.fail(err)
			}
			if size == 0 {
				if err := b.readTrailer(); err != nil {
					return 0, b.fail(err)
				}
				b.finish(true)
				return 0, io.EOF
			}
			b.left, b.state = size, 1
		case 1:
			if int64(len(p)) > b.left {
				p = p[:b.left]
			}
			n, err := br.Read(p)
			if b.left -= int64(n); b.left == 0 {
				b.state = 2
			}
			if err != nil && n == 0 {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return 0, b.fail(err)
			}
			return n, nil
		default:
			cr, err1 := br.ReadByte()
			lf, err2 := br.ReadByte()
			if err1 != nil || err2 != nil || cr != '\r' || lf != '\n' {
				return 0, b.fail(ErrMalformedResponse)
			}
			b.state = 0
		}
	}
}

// chunkSize reads a chunk-size line: hex digits, optional extensions.
func (b *body) chunkSize() (int64, error) {
	line, err := b.pc.br.ReadSlice('\n')
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if err != io.ErrUnexpectedEOF {
			err = ErrMalformedResponse // a line longer than the buffer, or a read error
		}
		return 0, err
	}
	line = trimEOL(line)
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = bytes.TrimRight(line, " \t")
	if len(line) == 0 || len(line) > 15 {
		return 0, ErrMalformedResponse
	}
	var n int64
	for _, c := range line {
		switch {
		case '0' <= c && c <= '9':
			n = n<<4 | int64(c-'0')
		case 'a' <= c && c <= 'f':
			n = n<<4 | int64(c-'a'+10)
		case 'A' <= c && c <= 'F':
			n = n<<4 | int64(c-'A'+10)
		default:
			return 0, ErrMalformedResponse
		}
	}
	return n, nil
}

// readTrailer reads the fields after the last chunk into resp.Trailer.
func (b *body) readTrailer() error {
	pc := b.pc
	if err := pc.readLines(pc.h.c.cfg.MaxHeaderBytes); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	start := 0
	for _, end := range pc.lines {
		line := trimEOL(pc.head[start:end])
		start = int(end)
		if line == nil {
			return ErrMalformedResponse
		}
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !tokenBytes(line[:colon]) {
			return ErrMalformedResponse
		}
		canonical(line[:colon])
		v := bytes.Trim(line[colon+1:], " \t")
		if bytes.IndexByte(v, 0) >= 0 {
			return ErrMalformedResponse
		}
		b.resp.Trailer = append(b.resp.Trailer, Field{Key: string(line[:colon]), Value: string(v)})
	}
	return nil
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

var errBodyClosed = errorString("h1client: read on a closed body")
