package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/internal/httpx"
	"github.com/plexushq/plexus/problem"
)

// APIConfig tunes the HTTP API. The zero value works.
type APIConfig struct {
	// MaxBodyBytes bounds an append or snapshot body. Default 8 MiB.
	MaxBodyBytes int64
	// Heartbeat is the interval of SSE comment lines. Default 15s.
	Heartbeat time.Duration
	// RequestTimeout bounds the engine calls of one request (and the
	// set-up of a subscription); past it the answer is 503 with
	// Retry-After. Default 5s.
	RequestTimeout time.Duration
	// Streams caps concurrent subscriptions (a node shares one limiter
	// between its APIs). Nil: no cap.
	Streams StreamLimiter
	// Logger for failed requests. Default: the store's.
	Logger *slog.Logger
}

// StreamLimiter caps concurrent long-lived answers. Acquire takes a slot
// without waiting, or returns the error to answer with.
type StreamLimiter interface {
	Acquire() (release func(), err error)
}

// API serves the events endpoints of docs/openapi.yaml and the
// parked-event endpoints on a mux.
type API struct {
	store *Store
	cfg   APIConfig
	log   *slog.Logger
	errs  httpx.Errors
}

// NewAPI returns the HTTP API of store.
func NewAPI(store *Store, cfg APIConfig) *API {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 8 << 20
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 15 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = store.log
	}
	return &API{store: store, cfg: cfg, log: log, errs: httpx.Errors{Log: log, Domain: apiProblem}}
}

// Mount registers the routes with handle (e.g. an http.ServeMux's Handle).
// Every route but the subscription stream runs under the request deadline.
func (a *API) Mount(handle func(pattern string, h http.Handler)) {
	handle("GET /v1/events/subscribe", http.HandlerFunc(a.subscribe))
	handle("GET /v1/events", http.HandlerFunc(a.readAll)) // NDJSON streams; pages under the deadline
	for pattern, h := range map[string]http.HandlerFunc{
		"POST /v1/streams/{stream}/events":                       a.appendEvents,
		"GET /v1/streams/{stream}/events":                        a.readStream,
		"GET /v1/streams/{stream}":                               a.streamInfo,
		"PUT /v1/streams/{stream}/snapshot":                      a.putSnapshot,
		"GET /v1/streams/{stream}/snapshot":                      a.getSnapshot,
		"GET /v1/subscriptions":                                  a.groups,
		"GET /v1/subscriptions/{group}/parked":                   a.parkedList,
		"POST /v1/subscriptions/{group}/parked/{position}/retry": a.parkedRetry,
		"DELETE /v1/subscriptions/{group}/parked/{position}":     a.parkedSkip,
	} {
		handle(pattern, httpx.Deadline(a.cfg.RequestTimeout, h))
	}
}

// Handler returns the API on a mux of its own.
func (a *API) Handler() http.Handler { return httpx.Mux(a.Mount) }

// AppendRequest is the body of POST /v1/streams/{stream}/events.
type AppendRequest struct {
	// ExpectedVersion: -1 any (default), 0 no stream, N exactly N.
	ExpectedVersion *int64  `json:"expectedVersion,omitempty"`
	Events          []Event `json:"events"`
}

// DecodeAppend strictly decodes an append body. It is what the HTTP API
// runs on every append, exported for clients and fuzzing.
func DecodeAppend(body []byte) (AppendRequest, *problem.Problem) {
	var req AppendRequest
	if p := httpx.DecodeJSONBytes(body, &req); p != nil {
		return req, p
	}
	if req.Events == nil {
		return req, httpx.NewProblem(http.StatusBadRequest, "bad-json", `field "events" is required`)
	}
	if len(req.Events) == 0 || len(req.Events) > MaxBatch {
		return req, httpx.NewProblem(http.StatusUnprocessableEntity, "invalid",
			fmt.Sprintf("%d events: want 1 to %d", len(req.Events), MaxBatch))
	}
	if req.ExpectedVersion != nil && *req.ExpectedVersion < AnyVersion {
		return req, httpx.NewProblem(http.StatusUnprocessableEntity, "invalid",
			fmt.Sprintf("expectedVersion %d: want -1 (any), 0 (no stream) or a version", *req.ExpectedVersion))
	}
	for i := range req.Events {
		if err := req.Events[i].Validate(); err != nil {
			return req, httpx.NewProblem(http.StatusUnprocessableEntity, "invalid", fmt.Sprintf("events[%d]: %v", i, err))
		}
	}
	return req, nil
}

func (a *API) appendEvents(w http.ResponseWriter, r *http.Request) {
	stream, ok := pathStream(w, r)
	if !ok {
		return
	}
	body, p := httpx.ReadBody(w, r, a.cfg.MaxBodyBytes)
	if p != nil {
		httpx.WriteProblem(w, p)
		return
	}
	req, p := DecodeAppend(body)
	if p != nil {
		httpx.WriteProblem(w, p)
		return
	}
	expected := AnyVersion
	if req.ExpectedVersion != nil {
		expected = *req.ExpectedVersion
	}
	res, err := a.store.Append(r.Context(), stream, expected, req.Events...)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, map[string]any{"version": res.Version, "position": res.Position})
}

func (a *API) readStream(w http.ResponseWriter, r *http.Request) {
	stream, ok := pathStream(w, r)
	if !ok {
		return
	}
	q := queryReader{r: r}
	from := q.int64("fromVersion", 0)
	limit := int(q.int64("limit", DefaultReadLimit))
	dir := r.URL.Query().Get("direction")
	if q.err != nil {
		httpx.WriteProblem(w, q.err)
		return
	}
	var events []Envelope
	var err error
	switch dir {
	case "", "forward":
		events, err = a.store.ReadStream(r.Context(), stream, max(from, 1), limit)
	case "backward":
		events, err = a.store.ReadStreamBackward(r.Context(), stream, from, limit)
	default:
		err = invalidf("direction %q: want forward or backward", dir)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeRaw(w, appendPage(nil, events, nil))
}

// writeRaw sends an encoded JSON answer.
func writeRaw(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

func (a *API) streamInfo(w http.ResponseWriter, r *http.Request) {
	stream, ok := pathStream(w, r)
	if !ok {
		return
	}
	v, pos, err := a.store.Version(r.Context(), stream)
	if err == nil && v == 0 {
		err = fmt.Errorf("%w: %q", ErrStreamNotFound, stream)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"stream": stream, "category": Category(stream), "version": v, "position": pos})
}

// readAll serves GET /v1/events: a page of events (JSON), or, for a
// client that accepts application/x-ndjson, every matching event up to the
// last one stored, streamed one per line (scanAll).
func (a *API) readAll(w http.ResponseWriter, r *http.Request) {
	if httpx.WantsNDJSON(r) {
		a.scanAll(w, r)
		return
	}
	httpx.Deadline(a.cfg.RequestTimeout, http.HandlerFunc(a.readPage)).ServeHTTP(w, r)
}

func (a *API) readPage(w http.ResponseWriter, r *http.Request) {
	query, p := parseQuery(r)
	if p != nil {
		httpx.WriteProblem(w, p)
		return
	}
	page, err := a.store.ReadAll(r.Context(), query)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeRaw(w, appendPage(make([]byte, 0, 512*len(page.Events)+64), page.Events, &page.NextPosition))
}

type snapshotBody struct {
	Version  int64           `json:"version"`
	Position uint64          `json:"position,omitempty"`
	State    json.RawMessage `json:"state"`
}

func (a *API) putSnapshot(w http.ResponseWriter, r *http.Request) {
	stream, ok := pathStream(w, r)
	if !ok {
		return
	}
	var body snapshotBody
	if p := httpx.DecodeJSON(w, r, &body, a.cfg.MaxBodyBytes); p != nil {
		httpx.WriteProblem(w, p)
		return
	}
	if err := a.store.SaveSnapshot(r.Context(), stream, Snapshot{Version: body.Version, Position: body.Position, State: body.State}); err != nil {
		a.fail(w, r, err)
		return
	}
	snap, err := a.store.LoadSnapshot(r.Context(), stream)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, snap)
}

func (a *API) getSnapshot(w http.ResponseWriter, r *http.Request) {
	stream, ok := pathStream(w, r)
	if !ok {
		return
	}
	snap, err := a.store.LoadSnapshot(r.Context(), stream)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, snap)
}

// GroupInfo describes a subscriber group.
type GroupInfo struct {
	Group string `json:"group"`
	// Checkpoint is the position of the last event handled or parked.
	Checkpoint uint64 `json:"checkpoint"`
	// Pending counts matching appends not delivered yet (engine
	// messages: an append of several events is one).
	Pending uint64 `json:"pending"`
	// InFlight counts appends delivered and not checkpointed.
	InFlight int `json:"inFlight"`
}

// Groups lists the subscriber groups and their checkpoints.
func (s *Store) Groups(ctx context.Context) ([]GroupInfo, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	out := []GroupInfo{}
	st, err := s.js.Stream(ctx, engine.StreamEvents)
	if err != nil {
		return nil, fmt.Errorf("eventstore: groups: %w", err)
	}
	l := st.ListConsumers(ctx)
	for ci := range l.Info() {
		g, ok := strings.CutPrefix(ci.Name, ConsumerName(""))
		if !ok {
			continue
		}
		cp, err := s.checkpointOf(ctx, ci.AckFloor.Stream)
		if err != nil {
			return nil, err
		}
		out = append(out, GroupInfo{Group: g, Checkpoint: cp, Pending: ci.NumPending, InFlight: ci.NumAckPending})
	}
	if err := l.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		return nil, fmt.Errorf("eventstore: groups: %w", err)
	}
	return out, nil
}

// checkpointOf is the position of the last event of the message at seq,
// a group's acknowledgement floor; 0 before the first.
func (s *Store) checkpointOf(ctx context.Context, seq uint64) (uint64, error) {
	if seq == 0 {
		return 0, nil
	}
	evs, err := s.readMessage(ctx, seq)
	if err != nil || len(evs) == 0 {
		return s.layout().pos(seq, 0), err
	}
	return evs[len(evs)-1].Position, nil
}

func (a *API) groups(w http.ResponseWriter, r *http.Request) {
	gs, err := a.store.Groups(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"groups": gs})
}

func (a *API) parkedList(w http.ResponseWriter, r *http.Request) {
	group := r.PathValue("group")
	if !ValidGroup(group) {
		httpx.WriteProblem(w, httpx.NewProblem(http.StatusBadRequest, "bad-name", fmt.Sprintf("group %q: want 1-64 of [a-zA-Z0-9_-]", group)))
		return
	}
	q := queryReader{r: r}
	limit := int(q.int64("limit", MaxParkedList))
	if q.err != nil {
		httpx.WriteProblem(w, q.err)
		return
	}
	list, err := a.store.Parked(r.Context(), group, limit)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"events": list})
}

func (a *API) parkedRetry(w http.ResponseWriter, r *http.Request) {
	group, pos, ok := pathParked(w, r)
	if !ok {
		return
	}
	if err := a.store.RetryParked(r.Context(), group, pos); err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusAccepted, map[string]any{"group": group, "position": pos, "state": ParkedRetrying})
}

func (a *API) parkedSkip(w http.ResponseWriter, r *http.Request) {
	group, pos, ok := pathParked(w, r)
	if !ok {
		return
	}
	if err := a.store.SkipParked(r.Context(), group, pos); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// fail answers err: the store's errors through apiProblem, the engine's and
// the rest through the shared mapping (5xx logged once there).
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	a.errs.Write(w, r, err)
}

// apiProblem maps the store's own errors to their answers; nil for the rest.
func apiProblem(err error) *httpx.Problem {
	var ce *ConflictError
	switch {
	case errors.As(err, &ce):
		return httpx.NewProblem(http.StatusConflict, "version-conflict", ce.Error()).
			With("currentVersion", ce.Current).With("expectedVersion", ce.Expected)
	case errors.Is(err, ErrStreamNotFound):
		return httpx.NewProblem(http.StatusNotFound, "stream-not-found", err.Error())
	case errors.Is(err, ErrNotFound):
		return httpx.NewProblem(http.StatusNotFound, "not-found", err.Error())
	case errors.Is(err, ErrInvalid):
		return httpx.NewProblem(http.StatusUnprocessableEntity, "invalid", err.Error())
	case errors.Is(err, ErrRejected):
		return httpx.NewProblem(http.StatusUnprocessableEntity, "rejected", err.Error())
	case errors.Is(err, ErrBusy):
		return httpx.NewProblem(http.StatusServiceUnavailable, "busy", err.Error()).Retry(httpx.RetryBusy)
	}
	return nil
}

func pathStream(w http.ResponseWriter, r *http.Request) (string, bool) {
	s := r.PathValue("stream")
	if !ValidStreamName(s) {
		httpx.WriteProblem(w, httpx.NewProblem(http.StatusBadRequest, "bad-name",
			fmt.Sprintf("stream %q: want 1-128 of [a-zA-Z0-9._-] starting with a letter or digit", s)))
		return "", false
	}
	return s, true
}

func pathParked(w http.ResponseWriter, r *http.Request) (string, uint64, bool) {
	group := r.PathValue("group")
	pos, err := strconv.ParseUint(r.PathValue("position"), 10, 64)
	if !ValidGroup(group) || err != nil || pos == 0 {
		httpx.WriteProblem(w, httpx.NewProblem(http.StatusBadRequest, "bad-name", "want /v1/subscriptions/<group>/parked/<position>"))
		return "", 0, false
	}
	return group, pos, true
}

// queryReader parses query parameters, keeping the first error.
type queryReader struct {
	r   *http.Request
	err *httpx.Problem
}

func (q *queryReader) int64(name string, def int64) int64 {
	s := q.r.URL.Query().Get(name)
	if s == "" || q.err != nil {
		return def
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		q.err = httpx.NewProblem(http.StatusBadRequest, "bad-query", fmt.Sprintf("%s=%q is not an integer", name, s))
	}
	return v
}

func (q *queryReader) uint64(name string) uint64 {
	s := q.r.URL.Query().Get(name)
	if s == "" || q.err != nil {
		return 0
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		q.err = httpx.NewProblem(http.StatusBadRequest, "bad-query", fmt.Sprintf("%s=%q is not a position", name, s))
	}
	return v
}

// parseQuery reads fromPosition, types, category, since and limit.
func parseQuery(r *http.Request) (Query, *httpx.Problem) {
	qr := queryReader{r: r}
	vals := r.URL.Query()
	q := Query{Category: vals.Get("category"), Limit: int(qr.int64("limit", 0))}
	if vals.Get("fromPosition") == "end" {
		q.OnlyNew = true
	} else {
		q.FromPosition = qr.uint64("fromPosition")
	}
	for _, t := range strings.Split(vals.Get("types"), ",") {
		if t = strings.TrimSpace(t); t != "" {
			q.Types = append(q.Types, t)
		}
	}
	switch d := vals.Get("direction"); d {
	case "", "forward":
	case "backward":
		q.Backward = true
	default:
		if qr.err == nil {
			qr.err = httpx.NewProblem(http.StatusBadRequest, "bad-query", fmt.Sprintf("direction=%q: want forward or backward", d))
		}
	}
	if s := vals.Get("since"); s != "" && qr.err == nil {
		ts, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			qr.err = httpx.NewProblem(http.StatusBadRequest, "bad-query", fmt.Sprintf("since=%q is not an RFC 3339 time", s))
		}
		q.Since = ts
	}
	if qr.err != nil {
		return q, qr.err
	}
	if err := q.Validate(); err != nil {
		return q, httpx.NewProblem(http.StatusBadRequest, "bad-query", err.Error())
	}
	return q, nil
}
