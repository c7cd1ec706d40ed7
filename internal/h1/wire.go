package h1

import (
	"bufio"
	"bytes"
	"io"
)

// lineReader reads a message head (or a trailer section) line by line
// into a buffer it reuses: head holds the bytes, lines the end of each
// line.
type lineReader struct {
	br    *bufio.Reader
	head  []byte
	lines []int32
}

// readLines reads up to and including the empty line ending a head, at
// most max bytes (ErrHeaderTooLarge beyond).
func (lr *lineReader) readLines(max int) error {
	lr.head, lr.lines = lr.head[:0], lr.lines[:0]
	for {
		line, err := lr.br.ReadSlice('\n')
		if len(lr.head)+len(line) > max {
			return ErrHeaderTooLarge
		}
		lr.head = append(lr.head, line...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF && len(lr.head) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		start := 0
		if n := len(lr.lines); n > 0 {
			start = int(lr.lines[n-1])
		}
		lr.lines = append(lr.lines, int32(len(lr.head)))
		if l := lr.head[start:]; len(l) == 1 || len(l) == 2 && l[0] == '\r' {
			return nil
		}
	}
}

// chunkedReader decodes a chunked body (RFC 9112 §7.1) from br: every
// Read returns what one read of the connection gave.
type chunkedReader struct {
	left  int64 // bytes left of the current chunk
	state int8  // 0 size line next, 1 in data, 2 CRLF next
}

// read returns data, or io.EOF at the last chunk: the trailer section
// is then the caller's to read.
func (c *chunkedReader) read(br *bufio.Reader, p []byte) (int, error) {
	for {
		switch c.state {
		case 0:
			size, err := readChunkSize(br)
			if err != nil {
				return 0, err
			}
			if size == 0 {
				return 0, io.EOF
			}
			c.left, c.state = size, 1
		case 1:
			if int64(len(p)) > c.left {
				p = p[:c.left]
			}
			n, err := br.Read(p)
			if c.left -= int64(n); c.left == 0 {
				c.state = 2
			}
			if err != nil && n == 0 {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return 0, err
			}
			return n, nil
		default:
			cr, err1 := br.ReadByte()
			lf, err2 := br.ReadByte()
			if err1 != nil || err2 != nil || cr != '\r' || lf != '\n' {
				return 0, errMalformedChunk
			}
			c.state = 0
		}
	}
}

var errMalformedChunk = errorString("h1: malformed chunked encoding")

// readChunkSize reads a chunk-size line: hex digits, optional extensions.
func readChunkSize(br *bufio.Reader) (int64, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if err != io.ErrUnexpectedEOF {
			err = errMalformedChunk // a line longer than the buffer, or a read error
		}
		return 0, err
	}
	line = trimEOL(line)
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = bytes.TrimRight(line, " \t")
	if len(line) == 0 || len(line) > 15 {
		return 0, errMalformedChunk
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
			return 0, errMalformedChunk
		}
	}
	return n, nil
}

// readTrailer reads a trailer section and appends its fields to dst
// (names canonical, strings of their own).
func readTrailer(lr *lineReader, max int, dst []Field) ([]Field, error) {
	if err := lr.readLines(max); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return dst, err
	}
	start := 0
	for _, end := range lr.lines {
		line := trimEOL(lr.head[start:end])
		start = int(end)
		if line == nil {
			return dst, errMalformedChunk
		}
		if len(line) == 0 {
			break
		}
		k, v, ok := splitField(line)
		if !ok {
			return dst, errMalformedChunk
		}
		dst = append(dst, Field{Key: string(k), Value: string(v)})
	}
	return dst, nil
}

// splitField splits "Name: value", the name put in canonical form in
// place and the value trimmed; false for a name that is not a token
// (also obs-fold and a space before the colon) or a value with a
// control character other than HTAB.
func splitField(line []byte) (k, v []byte, ok bool) {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 || !tokenBytes(line[:colon]) {
		return nil, nil, false
	}
	v = bytes.Trim(line[colon+1:], " \t")
	if !fieldValue(v) {
		return nil, nil, false
	}
	canonical(line[:colon])
	return line[:colon], v, true
}

// readLength reads at most *left bytes of a body framed by its length,
// counting them off; a connection that ends first is io.ErrUnexpectedEOF.
func readLength(br *bufio.Reader, p []byte, left *int64) (int, error) {
	if int64(len(p)) > *left {
		p = p[:*left]
	}
	n, err := br.Read(p)
	*left -= int64(n)
	if *left == 0 {
		return n, nil
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}
