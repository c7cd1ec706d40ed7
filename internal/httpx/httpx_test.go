package httpx

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/internal/httpguard"
)

// TestRetryHintInHeaderAndBody: a problem with a retry hint carries it in
// both places, always together, and a client reads it back.
func TestRetryHintInHeaderAndBody(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteProblem(rec, NewProblem(http.StatusServiceUnavailable, "x", "later").Retry(3))
	if rec.Header().Get("Retry-After") != "3" {
		t.Fatalf("Retry-After %q", rec.Header().Get("Retry-After"))
	}
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body["retryAfter"] != float64(3) {
		t.Fatalf("body %s (%v)", rec.Body, err)
	}
	var p Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.RetryAfter != 3 || p.Extra["retryAfter"] != float64(3) {
		t.Fatalf("decoded %+v (%v)", p, err)
	}
	rec = httptest.NewRecorder()
	WriteProblem(rec, NewProblem(http.StatusConflict, "x", "no hint").With("retryAfter", 9))
	if rec.Header().Get("Retry-After") != "" || strings.Contains(rec.Body.String(), "retryAfter") {
		t.Fatalf("a hint only in the body: %v %s", rec.Header(), rec.Body)
	}
}

// TestErrorsMapEngineFailuresAndLogOnce: engine failures become 503 (with
// the hint) or 507, domain answers win, unknown errors are a 500 without
// the cause, and each 5xx is logged exactly once with the cause.
func TestErrorsMapEngineFailuresAndLogOnce(t *testing.T) {
	errDomain := errors.New("domain thing")
	for _, tc := range []struct {
		name   string
		err    error
		status int
		retry  int
		logged bool
	}{
		{"timeout", fmt.Errorf("queue %q: publish: %w", "q", nats.ErrTimeout), 503, RetryUnavailable, true},
		{"deadline", fmt.Errorf("append: %w", context.DeadlineExceeded), 503, RetryUnavailable, true},
		{"no stream response", jetstream.ErrNoStreamResponse, 503, RetryUnavailable, true},
		{"storage full", engine.Classify(&jetstream.APIError{Code: 503, ErrorCode: jetstream.ErrorCode(nats.JSErrCodeInsufficientResourcesErr)}), 507, 0, true},
		{"storage full unclassified", &jetstream.APIError{Code: 503, ErrorCode: jetstream.ErrorCode(nats.JSErrCodeInsufficientResourcesErr)}, 507, 0, true},
		{"domain", errDomain, 404, 0, false},
		{"problem", NewProblem(409, "c", "conflict").Retry(1), 409, 1, false},
		{"unknown", errors.New("secret detail"), 500, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			e := Errors{Log: slog.New(slog.NewJSONHandler(&logs, nil)), Domain: func(err error) *Problem {
				if errors.Is(err, errDomain) {
					return NewProblem(404, "nf", err.Error())
				}
				return nil
			}}
			rec := httptest.NewRecorder()
			e.Write(rec, httptest.NewRequest("POST", "/v1/x", nil), tc.err)
			var p Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatal(err)
			}
			hdr := rec.Header().Get("Retry-After")
			if rec.Code != tc.status || p.Status != tc.status || p.RetryAfter != tc.retry || (hdr != "") != (tc.retry > 0) {
				t.Fatalf("%d %s (Retry-After %q)", rec.Code, rec.Body, hdr)
			}
			if strings.Contains(rec.Body.String(), "secret") {
				t.Fatalf("cause leaked: %s", rec.Body)
			}
			lines := strings.Count(logs.String(), "\n")
			if tc.logged != (lines == 1) || lines > 1 {
				t.Fatalf("%d log lines:\n%s", lines, logs.String())
			}
			if tc.logged && !strings.Contains(logs.String(), jsonString(tc.err.Error())) {
				t.Fatalf("log without the cause %q:\n%s", tc.err, logs.String())
			}
		})
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return strings.Trim(string(b), `"`)
}

func TestDecodeRejectsInvalidUTF8(t *testing.T) {
	var v map[string]json.RawMessage
	p := DecodeJSONBytes([]byte("{\"payload\":\"a\xffb\"}"), &v)
	if p == nil || p.Status != 400 || !strings.Contains(p.Detail, "UTF-8") || !strings.Contains(p.Detail, "offset 13") {
		t.Fatalf("problem %+v", p)
	}
	if p := DecodeJSONBytes([]byte(`{"payload":"é\u00ff"}`), &v); p != nil {
		t.Fatalf("valid UTF-8 refused: %+v", p)
	}
}

// FuzzDecodeJSONBytes: whatever is accepted is valid UTF-8 and decodes to
// values that encode back to valid JSON.
func FuzzDecodeJSONBytes(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"payload":{"order":42}}`, "{\"a\":\"\xff\"}", `{"a":"\ud800"}`, `[1,2]`, `{"a":1} x`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var v map[string]json.RawMessage
		if DecodeJSONBytes(body, &v) != nil {
			return
		}
		if !utf8.Valid(body) {
			t.Fatalf("accepted invalid UTF-8 %q", body)
		}
		out, err := json.Marshal(v)
		if err != nil || !json.Valid(out) || !utf8.Valid(out) {
			t.Fatalf("accepted %q re-encodes to %q (%v)", body, out, err)
		}
	})
}

// FuzzProblemUnmarshal: a problem read back from any body never panics
// and, when it decodes, writes back out as JSON.
func FuzzProblemUnmarshal(f *testing.F) {
	f.Add([]byte(`{"type":"urn:plexus:problem:x","title":"T","status":503,"retryAfter":2,"currentVersion":3}`))
	f.Add([]byte(`{"status":"x","retryAfter":"soon"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var p Problem
		if json.Unmarshal(body, &p) != nil {
			return
		}
		if _, err := p.MarshalJSON(); err != nil {
			t.Fatalf("%q: %v", body, err)
		}
	})
}

func TestDeadlineBoundsTheRequestContext(t *testing.T) {
	var left time.Duration
	h := Deadline(50*time.Millisecond, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dl, ok := r.Context().Deadline()
		if !ok {
			t.Error("no deadline")
		}
		left = time.Until(dl)
		<-r.Context().Done()
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	if left <= 0 || left > 50*time.Millisecond {
		t.Fatalf("deadline in %s", left)
	}
}

func TestSlotsCap(t *testing.T) {
	s := NewSlots(2)
	r1, p1 := s.Acquire()
	_, p2 := s.Acquire()
	_, err := s.Acquire()
	var p3 *Problem
	if !errors.As(err, &p3) || p1 != nil || p2 != nil || p3.Status != 503 || p3.RetryAfter != RetryBusy || s.InUse() != 2 {
		t.Fatalf("%v %v %+v in use %d", p1, p2, p3, s.InUse())
	}
	r1()
	if _, p := s.Acquire(); p != nil {
		t.Fatalf("slot not released: %+v", p)
	}
}

// TestSSEHeartbeatsAndEvents: events and heartbeat comments arrive in the
// stream's format.
func TestSSEHeartbeatsAndEvents(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, ctx := StartSSE(w, r, SSEConfig{Heartbeat: 20 * time.Millisecond})
		defer s.Close()
		_ = s.Event("put", ID(7), []byte(`{"a":1}`))
		_ = s.Event("", "", []byte("two\nlines"))
		<-ctx.Done()
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	br := bufio.NewReader(resp.Body)
	var got strings.Builder
	for !strings.Contains(got.String(), ": heartbeat\n\n") {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("%v after %q", err, got.String())
		}
		got.WriteString(line)
	}
	want := "event: put\nid: 7\ndata: {\"a\":1}\n\ndata: two\ndata: lines\n\n: heartbeat\n\n"
	if got.String() != want {
		t.Fatalf("stream %q, want %q", got.String(), want)
	}
}

// TestSSEStalledClientEndsStream: a client that stops reading cannot hold
// the stream: the write deadline fails a write and ends the stream's
// context, so the handler returns.
func TestSSEStalledClientEndsStream(t *testing.T) {
	ended := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, ctx := StartSSE(w, r, SSEConfig{WriteTimeout: 100 * time.Millisecond, Heartbeat: time.Hour})
		defer s.Close()
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for ctx.Err() == nil {
			if err := s.Event("", "", chunk); err != nil {
				ended <- err
				return
			}
		}
		ended <- ctx.Err()
	}))
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// Never read: the kernel buffers fill and a write blocks.
	select {
	case err := <-ended:
		if err == nil {
			t.Fatal("stream ended without an error")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a stalled client held the stream for 30s")
	}
}

// TestReadBodyTimeoutIs408: a body that stops arriving (the listener's
// idle deadline, httpguard) is the client's fault: 408, not a 400.
func TestReadBodyTimeoutIs408(t *testing.T) {
	got := make(chan *Problem, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := httpguard.NewBody(w, r.Body, 100*time.Millisecond)
		defer b.Detach()
		r.Body = b
		_, p := ReadBody(w, r, 0)
		got <- p
	}))
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{\"a")
	select {
	case p := <-got:
		if p == nil || p.Status != http.StatusRequestTimeout {
			t.Fatalf("problem %+v", p)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a stalled body held the handler")
	}
}

// TestReadBodyTimeoutAnsweredPastTheWriteBound: the admin listener bounds
// writing an answer from the request's start (WriteTimeout), which is
// shorter than the body idle timeout by default (35s against 60s). A body
// that stalls past the write bound still gets its 408: the connection used
// to close without an answer.
func TestReadBodyTimeoutAnsweredPastTheWriteBound(t *testing.T) {
	srv := httptest.NewServer(WriteTimeout(100*time.Millisecond, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := httpguard.NewBody(w, r.Body, 400*time.Millisecond) // its deadline is always past the write bound
		defer b.Detach()
		r.Body = b
		if _, p := ReadBody(w, r, 0); p != nil {
			WriteProblem(w, p)
		}
	})))
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	_, _ = io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{\"a")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), "request-timeout") {
		t.Fatalf("stalled body: %d %s", resp.StatusCode, body)
	}
}
