package httpx

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// SSE defaults.
const (
	DefaultHeartbeat       = 15 * time.Second
	DefaultSSEWriteTimeout = 10 * time.Second
)

// SSEConfig tunes a server-sent-events answer. The zero value works.
type SSEConfig struct {
	// Heartbeat is the interval of comment lines that keep an idle stream
	// open through proxies and reveal a gone client. Default 15s.
	Heartbeat time.Duration
	// WriteTimeout bounds each write (event or heartbeat): a client that
	// stops reading ends the stream instead of holding it. Default 10s.
	WriteTimeout time.Duration
	// Comment is the heartbeat's text. Default "heartbeat".
	Comment string
}

// SSE is one server-sent-events answer, the one way every Plexus API
// streams: headers sent once, every write under a write deadline, a
// heartbeat owned by the stream, and a context that ends when the stream
// must (client gone, write failed or timed out, server shutting down).
// Event and Close may be called from any goroutine.
type SSE struct {
	w      http.ResponseWriter
	rc     *http.ResponseController
	cfg    SSEConfig
	mu     sync.Mutex
	buf    []byte
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// StartSSE sends the stream's headers (200, text/event-stream) and starts
// its heartbeat. ctx ends when the request's context does, when the server
// begins a graceful shutdown (Stopping), or when a write fails; the handler
// stops producing then and calls Close.
func StartSSE(w http.ResponseWriter, r *http.Request, cfg SSEConfig) (*SSE, context.Context) {
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultSSEWriteTimeout
	}
	if cfg.Comment == "" {
		cfg.Comment = "heartbeat"
	}
	ctx, cancel := context.WithCancel(r.Context())
	s := &SSE{w: w, rc: http.NewResponseController(w), cfg: cfg, cancel: cancel}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	s.mu.Lock()
	_ = s.rc.SetWriteDeadline(time.Now().Add(cfg.WriteTimeout))
	w.WriteHeader(http.StatusOK)
	err := s.rc.Flush()
	s.mu.Unlock()
	if err != nil {
		cancel()
	}
	s.wg.Add(1)
	go s.beat(ctx, Stopping(r.Context()))
	return s, ctx
}

// Event sends one event: an optional name and id, then data (one line of
// JSON in Plexus's streams; newlines in data would split it, so data with
// newlines is sent as several data lines, as the format requires).
func (s *SSE) Event(name, id string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buf[:0]
	if name != "" {
		b = append(append(append(b, "event: "...), name...), '\n')
	}
	if id != "" {
		b = append(append(append(b, "id: "...), id...), '\n')
	}
	start := 0
	for i := 0; i <= len(data); i++ {
		if i == len(data) || data[i] == '\n' {
			b = append(append(append(b, "data: "...), data[start:i]...), '\n')
			start = i + 1
		}
	}
	b = append(b, '\n')
	s.buf = b
	return s.write(b)
}

// ID formats a numeric event id.
func ID(n uint64) string { return strconv.FormatUint(n, 10) }

// write sends b under a fresh write deadline; the caller holds mu. A
// failed write ends the stream.
func (s *SSE) write(b []byte) error {
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	_, err := s.w.Write(b)
	if err == nil {
		err = s.rc.Flush()
	}
	if err != nil {
		s.cancel()
	}
	return err
}

func (s *SSE) beat(ctx context.Context, stopping <-chan struct{}) {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.Heartbeat)
	defer t.Stop()
	line := []byte(": " + s.cfg.Comment + "\n\n")
	for {
		select {
		case <-ctx.Done():
			return
		case <-stopping:
			s.cancel()
			return
		case <-t.C:
			s.mu.Lock()
			err := s.write(line)
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}
}

// Close ends the stream's context and heartbeat and waits for the
// heartbeat to return. The handler returns after it.
func (s *SSE) Close() {
	s.once.Do(func() {
		s.cancel()
		s.wg.Wait()
	})
}
