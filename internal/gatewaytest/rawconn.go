package gatewaytest

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// conn is a raw TCP connection to the gateway: requests are written as
// bytes, exactly as an attacker would send them, and answers read back
// with net/http's parser.
type conn struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

// answer is one response read from a conn.
type answer struct {
	status      int
	header      http.Header
	body        []byte
	close       bool // the answer said Connection: close
	continue100 bool // a 100 Continue came first
}

func (s *suite) dial(t testing.TB) *conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.addr, 10*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", s.addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &conn{t: t, c: c, br: bufio.NewReader(c)}
}

// send writes raw bytes; a write the gateway refuses (it closed the
// connection) is not an error here: what matters is its answer.
func (c *conn) send(raw string) {
	_ = c.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(c.c, raw)
}

// read reads the next answer within d, skipping (and noting) 100 Continue.
func (c *conn) read(d time.Duration) (*answer, error) {
	_ = c.c.SetReadDeadline(time.Now().Add(d))
	a := &answer{}
	for {
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode == http.StatusContinue {
			a.continue100 = true
			continue
		}
		a.status, a.header, a.close = resp.StatusCode, resp.Header, resp.Close
		a.body, err = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			return nil, err
		}
		return a, nil
	}
}

// mustRead reads the next answer or fails the test.
func (c *conn) mustRead(d time.Duration) *answer {
	c.t.Helper()
	a, err := c.read(d)
	if err != nil {
		c.t.Fatalf("no answer within %v: %v", d, err)
	}
	return a
}

// waitContinue reads what comes within d without a body: a 100 Continue
// (true), or a final answer (false, with it), or nothing (false, nil).
func (c *conn) waitContinue(d time.Duration) (bool, *answer) {
	_ = c.c.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return false, nil
	}
	if resp.StatusCode == http.StatusContinue {
		return true, nil
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	return false, &answer{status: resp.StatusCode, header: resp.Header, body: b, close: resp.Close}
}

// closedWithin reports that the gateway closed the connection within d
// (end of stream or reset) without sending anything more.
func (c *conn) closedWithin(d time.Duration) bool {
	_ = c.c.SetReadDeadline(time.Now().Add(d))
	var b [1]byte
	n, err := c.br.Read(b[:])
	if n > 0 {
		return false
	}
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

// closes reports that the answer says the connection closes after it
// (net/http's parser takes Connection: close out of the header).
func (a *answer) closes() bool { return a.close }

// problemType is the RFC 9457 type slug of a problem answer ("" when the
// answer is not a Plexus problem).
func (a *answer) problemType() string {
	var p struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(a.body, &p) != nil {
		return ""
	}
	return strings.TrimPrefix(p.Type, "urn:plexus:problem:")
}
