package eventstore

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/plexushq/plexus/internal/httpx"
)

// subscribe serves GET /v1/events/subscribe as server-sent events: the
// stored events from fromPosition (or after Last-Event-ID), then live
// ones. Each event's SSE id is its position. The stream takes one of the
// node's stream slots (503 with a retry hint when none is free), holds at
// most TailBuffer events ahead of the client, and ends — removing its
// engine consumer at once — when the client goes, a write fails or times
// out, or the server shuts down.
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
	release, err := a.acquire()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	defer release()
	tctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	var sse *httpx.SSE
	var buf []byte
	ready := func() {
		var sctx context.Context
		sse, sctx = httpx.StartSSE(w, r, httpx.SSEConfig{Heartbeat: a.cfg.Heartbeat})
		context.AfterFunc(sctx, cancel) // the stream ended (write failed, shutdown): end the tail
	}
	err = a.store.tail(tctx, q, tailOpts{ready: ready, setup: httpx.RequestTimeout(a.cfg.RequestTimeout)},
		func(e Envelope) error {
			buf = appendEnvelope(buf[:0], &e)
			return sse.Event("", httpx.ID(e.Position), buf)
		})
	if sse == nil {
		if err == nil {
			err = r.Context().Err()
		}
		a.fail(w, r, err)
		return
	}
	sse.Close()
	if err != nil && r.Context().Err() == nil {
		a.log.Debug("events: SSE subscription ended", "err", err)
	}
}

func (a *API) acquire() (func(), error) {
	if a.cfg.Streams == nil {
		return func() {}, nil
	}
	return a.cfg.Streams.Acquire()
}
