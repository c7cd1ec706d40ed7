package eventstore

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/plexushq/plexus/internal/httpx"
)

// errScanLimit ends a streamed read at the client's limit.
var errScanLimit = errors.New("eventstore: scan limit reached")

// scanAll streams every event matching the query, from fromPosition (or
// since) up to the last event stored when it starts, as NDJSON: one
// envelope per line, in global order. limit, when given, bounds the
// number of events (any positive number). The answer takes one of the
// node's stream slots; a failure after the first line aborts the answer,
// so a client never mistakes a broken stream for a complete one (it
// continues after the last position it got).
func (a *API) scanAll(w http.ResponseWriter, r *http.Request) {
	q, limit, p := parseScanQuery(r)
	if p != nil {
		httpx.WriteProblem(w, p)
		return
	}
	release, err := a.acquire()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	defer release()
	ctx, cancel := httpx.StreamContext(r)
	defer cancel()
	out := httpx.StartNDJSON(w, 0)
	n := 0
	err = a.store.scan(ctx, q, tailOpts{setup: httpx.RequestTimeout(a.cfg.RequestTimeout)}, func(e Envelope) error {
		if err := out.Line(appendEnvelope(out.Buffer(), &e)); err != nil {
			return err
		}
		if n++; limit > 0 && n >= limit {
			return errScanLimit
		}
		return nil
	})
	if errors.Is(err, errScanLimit) {
		err = nil
	}
	if err == nil && ctx.Err() != nil && r.Context().Err() == nil {
		err = fmt.Errorf("eventstore: scan: %w", context.Canceled) // the server is stopping
	}
	switch {
	case err == nil:
		_ = out.Flush()
	case !out.Started():
		a.fail(w, r, err)
	default:
		a.log.Debug("events: NDJSON read ended early", "after", n, "err", err)
		out.Abort()
	}
}

// parseScanQuery reads a streamed read's query: parseQuery's, with a
// limit of any size and no "fromPosition=end".
func parseScanQuery(r *http.Request) (Query, int, *httpx.Problem) {
	limit := 0
	if s := r.URL.Query().Get("limit"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			return Query{}, 0, httpx.NewProblem(http.StatusBadRequest, "bad-query", fmt.Sprintf("limit=%q: want a positive integer", s))
		}
		limit = v
		vals := r.URL.Query()
		vals.Del("limit")
		r = r.Clone(r.Context())
		r.URL.RawQuery = vals.Encode()
	}
	q, p := parseQuery(r)
	if p != nil {
		return q, 0, p
	}
	if q.OnlyNew {
		return q, 0, httpx.NewProblem(http.StatusBadRequest, "bad-query", "fromPosition=end streams only with /v1/events/subscribe")
	}
	if q.Backward {
		return q, 0, httpx.NewProblem(http.StatusBadRequest, "bad-query", "direction=backward reads pages only")
	}
	return q, limit, nil
}
