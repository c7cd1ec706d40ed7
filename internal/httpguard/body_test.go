package httpguard

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// result is what a handler learnt reading a guarded body.
type result struct {
	data     string
	err      error
	complete bool
}

// serveBody runs a server whose handler reads the whole guarded body and
// reports it; it returns the server's address and the reports.
func serveBody(t *testing.T, idle time.Duration, during func(*Body)) (string, <-chan result) {
	t.Helper()
	out := make(chan result, 4)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := NewBody(w, r.Body, idle)
		defer b.Detach()
		if during != nil {
			go during(b)
		}
		data, err := io.ReadAll(b)
		out <- result{data: string(data), err: err, complete: b.Complete()}
		if MustClose(r, !b.Complete()) {
			SetClose(w.Header())
		}
	}))
	srv.Config = NewServer(srv.Config.Handler, Limits{})
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), out
}

func rawSend(t *testing.T, addr, raw string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestBodyReadsWholeBody(t *testing.T) {
	addr, out := serveBody(t, time.Second, nil)
	rawSend(t, addr, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
	r := <-out
	if r.data != "hello" || r.err != nil || !r.complete {
		t.Fatalf("%+v", r)
	}
}

// A client that stops sending gets a timeout *ClientError after the idle
// timeout, however long the body was going to be.
func TestBodyIdleTimeout(t *testing.T) {
	addr, out := serveBody(t, 300*time.Millisecond, nil)
	c := rawSend(t, addr, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
	var r result
	select {
	case r = <-out:
	case <-time.After(20 * time.Second):
		t.Fatal("a stalled body was waited for 20s")
	}
	var ce *ClientError
	if !errors.As(r.err, &ce) || !ce.Timeout() || r.complete || r.data != "abc" {
		t.Fatalf("%+v: want the 3 bytes and a timeout ClientError", r)
	}
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufioReader(c), nil)
	if err != nil || !resp.Close {
		t.Fatalf("answer %v %v: want one that closes the connection", resp, err)
	}
}

// Progress moves the deadline: a body sent slowly, but never idle for
// the timeout, is read whole.
func TestBodySlowButSteady(t *testing.T) {
	addr, out := serveBody(t, time.Second, nil)
	c := rawSend(t, addr, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n")
	for _, p := range []string{"ab", "cd", "ef"} {
		time.Sleep(400 * time.Millisecond) // 1.2s in all, never 1s idle
		_, _ = io.WriteString(c, p)
	}
	if r := <-out; r.data != "abcdef" || r.err != nil {
		t.Fatalf("%+v", r)
	}
}

// Expire ends a read waiting on the client at once, with a timeout error;
// Waiting tells that a read was waiting.
func TestBodyExpire(t *testing.T) {
	waited := make(chan bool, 1)
	addr, out := serveBody(t, time.Minute, func(b *Body) {
		for !b.Waiting() {
			time.Sleep(time.Millisecond)
		}
		waited <- true
		b.Expire()
	})
	rawSend(t, addr, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
	r := <-out
	var ce *ClientError
	if !<-waited || !errors.As(r.err, &ce) || !ce.Timeout() {
		t.Fatalf("%+v", r)
	}
}

func TestClientErrorKinds(t *testing.T) {
	t.Parallel()
	if (&ClientError{Err: io.ErrUnexpectedEOF}).Timeout() {
		t.Error("a cut body is not a timeout")
	}
	mbe := &http.MaxBytesError{Limit: 3}
	var got *http.MaxBytesError
	if !errors.As(&ClientError{Err: mbe}, &got) || got.Limit != 3 {
		t.Error("a ClientError does not unwrap to its cause")
	}
	if !strings.Contains((&ClientError{Err: io.ErrUnexpectedEOF}).Error(), "client") {
		t.Error("message does not say whose body broke")
	}
}

func TestMustClose(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest("POST", "/", strings.NewReader("x"))
	if MustClose(r, false) || !MustClose(r, true) {
		t.Error("an HTTP/1 request closes exactly when its body is unread")
	}
	r.TransferEncoding = []string{"chunked"}
	if !MustClose(r, false) {
		t.Error("a chunked HTTP/1 request must close (its Content-Length may have been dropped)")
	}
	r.ProtoMajor = 2
	if MustClose(r, true) {
		t.Error("an HTTP/2 stream never closes the connection")
	}
}

// After Detach the body no longer touches the connection.
func TestBodyDetached(t *testing.T) {
	t.Parallel()
	w := httptest.NewRecorder()
	b := NewBody(w, io.NopCloser(strings.NewReader("abc")), time.Second)
	b.Detach()
	if _, err := b.Read(make([]byte, 3)); !errors.Is(err, ErrDetached) {
		t.Fatalf("read after Detach: %v", err)
	}
}

func bufioReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }
