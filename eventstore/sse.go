package eventstore

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/plexushq/plexus/internal/httpx"
)

// subscribe serves GET /v1/events/subscribe as server-sent events: the
// stored events from fromPosition (or after Last-Event-ID), then live
// ones. Each event's SSE id is its position; comment lines keep idle
// connections alive; the stream ends when the server shuts down.
func (a *API) subscribe(w http.ResponseWriter, r *http.Request) {
	q, p := parseQuery(r)
	if p != nil {
		httpx.WriteProblem(w, p)
		return
	}
	if last := r.Header.Get("Last-Event-ID"); last != "" {
		pos, err := strconv.ParseUint(last, 10, 64)
		if err != nil {
			httpx.WriteProblem(w, httpx.NewProblem(http.StatusBadRequest, "bad-query", "Last-Event-ID must be a position"))
			return
		}
		q.FromPosition, q.Since, q.OnlyNew = pos+1, time.Time{}, false
	}
	rc := http.NewResponseController(w)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	var mu sync.Mutex // the heartbeat and the events share the writer
	var wg sync.WaitGroup
	started := false
	ready := func() {
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
		_ = rc.Flush()
		started = true
		wg.Add(1)
		go a.heartbeat(ctx, r, w, rc, &mu, cancel, &wg)
	}
	buf := make([]byte, 0, 1024)
	err := a.store.tail(ctx, q, ready, func(e Envelope) error {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		buf = append(buf[:0], "id: "...)
		buf = strconv.AppendUint(buf, e.Position, 10)
		buf = append(buf, "\ndata: "...)
		buf = append(buf, b...)
		buf = append(buf, "\n\n"...)
		mu.Lock()
		defer mu.Unlock()
		if _, err := w.Write(buf); err != nil {
			return err
		}
		return rc.Flush()
	})
	cancel()
	wg.Wait()
	if !started {
		if err == nil {
			err = ctx.Err()
		}
		a.fail(w, r, err)
		return
	}
	if err != nil && r.Context().Err() == nil {
		a.log.Debug("events: SSE subscription ended", "err", err)
	}
}

// heartbeat writes a comment line every Heartbeat and ends the stream
// (cancel) when the server begins shutting down or a write fails.
func (a *API) heartbeat(ctx context.Context, r *http.Request, w http.ResponseWriter, rc *http.ResponseController,
	mu *sync.Mutex, cancel context.CancelFunc, wg *sync.WaitGroup) {
	defer wg.Done()
	defer cancel()
	t := time.NewTicker(a.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-httpx.Stopping(r.Context()):
			return
		case <-t.C:
			mu.Lock()
			_, err := w.Write([]byte(": heartbeat\n\n"))
			if err == nil {
				err = rc.Flush()
			}
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}
}
