package httpx

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/plexushq/plexus/engine"
)

// Retry hints of the shared failure answers, in seconds.
const (
	// RetryUnavailable follows an engine that is unavailable, has no
	// leader or did not answer in time: failover and reconnects take about
	// this long.
	RetryUnavailable = 2
	// RetryBusy follows a capacity limit (concurrent streams, batches in
	// flight) that frees up as other requests end.
	RetryBusy = 1
)

// EngineProblem is the one mapping of the engine's failures to HTTP:
// storage full → 507 storage-full; unavailable, no leader, timeout → 503
// engine-unavailable with a retry hint; a message over the server's
// max_payload → 413 message-too-large naming the limit. A *Problem
// anywhere in err's chain is answered as it is. It returns nil for every
// other error.
func EngineProblem(err error) *Problem {
	var p *Problem
	var tl *engine.TooLargeError
	c := engine.Classify(err)
	switch {
	case errors.As(err, &p):
		return p
	case errors.As(c, &tl):
		return NewProblem(http.StatusRequestEntityTooLarge, "message-too-large", tl.Error()+"; nothing was stored").
			With("maxPayloadBytes", tl.Limit)
	case errors.Is(c, engine.ErrTooLarge):
		return NewProblem(http.StatusRequestEntityTooLarge, "message-too-large",
			"a message is larger than the engine accepts (its max_payload or the stream's maximum message size); nothing was stored")
	case errors.Is(c, engine.ErrStorageFull):
		return NewProblem(http.StatusInsufficientStorage, "storage-full",
			"the engine's storage is full; nothing was stored. Retry once space is freed")
	case errors.Is(c, engine.ErrUnavailable):
		return NewProblem(http.StatusServiceUnavailable, "engine-unavailable",
			"the engine did not answer in time (unavailable, no leader or overloaded); retry shortly").
			Retry(RetryUnavailable)
	case errors.Is(err, context.Canceled):
		// The client went away, or the node is stopping: nobody reads this.
		return NewProblem(http.StatusServiceUnavailable, "cancelled", "the request was cancelled").Retry(RetryUnavailable)
	}
	return nil
}

// Errors writes the error answers of one HTTP API: its own domain mapping
// first, then EngineProblem, else a 500 that does not leak the cause. Every
// 5xx is logged here, once, with the cause; handlers do not log errors
// they hand to it.
type Errors struct {
	// Log receives the 5xx. Default slog.Default().
	Log *slog.Logger
	// Domain maps the API's own errors; nil for errors it does not know.
	Domain func(error) *Problem
}

// Problem is the answer for err.
func (e Errors) Problem(err error) *Problem {
	if e.Domain != nil {
		if p := e.Domain(err); p != nil {
			return p
		}
	}
	if p := EngineProblem(err); p != nil {
		return p
	}
	return NewProblem(http.StatusInternalServerError, "internal", "internal error")
}

// Write answers r with err's problem and logs it when it is a 5xx.
func (e Errors) Write(w http.ResponseWriter, r *http.Request, err error) {
	p := e.Problem(err)
	if p.Status >= 500 {
		e.log(r, p, err)
	}
	WriteProblem(w, p)
}

func (e Errors) log(r *http.Request, p *Problem, err error) {
	log := e.Log
	if log == nil {
		log = slog.Default()
	}
	level := slog.LevelError
	switch {
	case errors.Is(r.Context().Err(), context.Canceled):
		level = slog.LevelDebug // the client left (or the node is stopping)
	case p.Status == http.StatusServiceUnavailable:
		level = slog.LevelWarn // temporary, answered with a retry hint
	}
	log.Log(r.Context(), level, "request failed", "method", r.Method, "path", r.URL.Path,
		"status", p.Status, "problem", p.Type, "err", err)
}
