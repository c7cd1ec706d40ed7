package queue

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/plexushq/plexus/internal/httpx"
)

// APIConfig configures the queue's HTTP API. The zero value works.
type APIConfig struct {
	// RequestTimeout bounds the engine calls of one request (a receive:
	// its wait plus this); past it the answer is 503 with Retry-After.
	// Default 5s.
	RequestTimeout time.Duration
	// Logger for failed requests. Default: the broker's.
	Logger *slog.Logger
}

// API serves the queue endpoints of docs/openapi.yaml over a Broker.
// Handlers are thin: decode, call the Broker, encode; errors go through
// the API's httpx.Errors (every 5xx logged once).
type API struct {
	b       *Broker
	timeout time.Duration
	errs    httpx.Errors
}

// NewAPI returns the HTTP API over b.
func NewAPI(b *Broker, cfg APIConfig) *API {
	log := cfg.Logger
	if log == nil {
		log = b.log
	}
	return &API{b: b, timeout: httpx.RequestTimeout(cfg.RequestTimeout), errs: httpx.Errors{Log: log, Domain: apiProblem}}
}

// Mount registers the routes with handle (e.g. a ServeMux's Handle).
// Every route runs under the request deadline; a receive under its wait
// plus that.
func (a *API) Mount(handle func(pattern string, h http.Handler)) {
	handle("POST /v1/queues/{queue}/receive", http.HandlerFunc(a.handleReceive))
	for pattern, h := range map[string]http.HandlerFunc{
		"PUT /v1/queues/{queue}":                       a.handlePut,
		"GET /v1/queues":                               a.handleList,
		"GET /v1/queues/{queue}":                       a.handleGet,
		"DELETE /v1/queues/{queue}":                    a.handleDelete,
		"POST /v1/queues/{queue}/messages":             a.handlePublish,
		"POST /v1/queues/{queue}/ack":                  a.handleAck,
		"POST /v1/queues/{queue}/nack":                 a.handleNack,
		"POST /v1/queues/{queue}/extend":               a.handleExtend,
		"GET /v1/queues/{queue}/dead-letters":          a.handleDeadLetters,
		"POST /v1/queues/{queue}/dead-letters/redrive": a.handleRedrive,
		"DELETE /v1/queues/{queue}/dead-letters":       a.handlePurge,
	} {
		handle(pattern, httpx.Deadline(a.timeout, h))
	}
}

// Handler is the HTTP API on its own mux (tests, embedding).
func (a *API) Handler() http.Handler { return httpx.Mux(a.Mount) }

// fail answers err: the queue's errors through problem, the engine's and
// the rest through the shared mapping (every 5xx logged once there).
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	a.errs.Write(w, r, err)
}

// name reads and checks the {queue} path value (400 when invalid).
func name(w http.ResponseWriter, r *http.Request) (string, bool) {
	n := r.PathValue("queue")
	if !ValidName(n) {
		httpx.WriteProblem(w, apiProblem(fmt.Errorf("%w: %q", ErrInvalidName, n)))
		return "", false
	}
	return n, true
}

func (a *API) handlePut(w http.ResponseWriter, r *http.Request) {
	n, ok := name(w, r)
	if !ok {
		return
	}
	var req configRequest
	if p := httpx.DecodeOptional(w, r, &req, 0); p != nil {
		httpx.WriteProblem(w, p)
		return
	}
	cfg := req.config()
	if old, err := a.b.Stats(r.Context(), n); err == nil {
		cfg.DeadLetterOf = old.Config.DeadLetterOf // a dead-letter queue stays one
	}
	info, created, err := a.b.CreateQueue(r.Context(), n, cfg)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	httpx.WriteJSON(w, status, info)
}

func (a *API) handleList(w http.ResponseWriter, r *http.Request) {
	infos, err := a.b.List(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if infos == nil {
		infos = []*Info{}
	}
	httpx.WriteJSON(w, http.StatusOK, infos)
}

func (a *API) handleGet(w http.ResponseWriter, r *http.Request) {
	n, ok := name(w, r)
	if !ok {
		return
	}
	info, err := a.b.Stats(r.Context(), n)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, info)
}

func (a *API) handleDelete(w http.ResponseWriter, r *http.Request) {
	n, ok := name(w, r)
	if !ok {
		return
	}
	if err := a.b.DeleteQueue(r.Context(), n); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) handlePublish(w http.ResponseWriter, r *http.Request) {
	n, ok := name(w, r)
	if !ok {
		return
	}
	body, p := httpx.ReadBody(w, r, maxPublishBody)
	if p != nil {
		httpx.WriteProblem(w, p)
		return
	}
	msgs, batch, p := DecodePublish(body)
	if p != nil {
		httpx.WriteProblem(w, p)
		return
	}
	ids, err := a.b.PublishBatch(r.Context(), n, msgs)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeRaw(w, http.StatusCreated, appendIDs(make([]byte, 0, 16+len(ids)*32), ids, batch))
}

// writeRaw sends a JSON body written by hand (wirefast.go).
func writeRaw(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func (a *API) handleReceive(w http.ResponseWriter, r *http.Request) {
	n, ok := name(w, r)
	if !ok {
		return
	}
	body, p := httpx.ReadBody(w, r, 0)
	if p != nil {
		httpx.WriteProblem(w, p)
		return
	}
	req, fast := decodeReceive(body)
	if !fast && len(bytes.TrimSpace(body)) > 0 {
		if p := httpx.DecodeJSONBytes(body, &req); p != nil {
			httpx.WriteProblem(w, p)
			return
		}
	}
	if req.Max == 0 {
		req.Max = 1
	}
	wait := defaultWait
	if req.Wait != nil {
		wait = req.Wait.D()
	}
	var bad string
	switch {
	case req.Max < 1 || req.Max > maxReceive:
		bad = fmt.Sprintf("max %d: want 1 to %d", req.Max, maxReceive)
	case wait < 0 || wait > maxWait:
		bad = fmt.Sprintf("wait %s: want 0 to %s", wait, maxWait)
	case len(req.Consumer) > 128:
		bad = "consumer: at most 128 bytes"
	case len(req.Ack) > maxBatch:
		bad = fmt.Sprintf("ack: %d receipts, at most %d", len(req.Ack), maxBatch)
	}
	if bad != "" {
		httpx.WriteProblem(w, httpx.NewProblem(http.StatusUnprocessableEntity, "invalid-receive", bad))
		return
	}
	if v := req.VisibilityTimeout.D(); v != 0 && (v < minVisibility || v > maxVisibility) {
		httpx.WriteProblem(w, httpx.NewProblem(http.StatusUnprocessableEntity, "invalid-receive",
			fmt.Sprintf("visibilityTimeout %s: want %s to %s (or leave it out for the queue's)", v, minVisibility, maxVisibility)))
		return
	}
	if len(req.Ack) > 0 {
		actx, cancel := context.WithTimeout(r.Context(), a.timeout)
		err := a.b.Ack(actx, n, req.Ack)
		cancel()
		if err != nil {
			a.fail(w, r, err) // nothing was received
			return
		}
	}
	// The wait is the client's; the engine calls around it get the request
	// deadline, and the answer may be written that much later.
	ctx, cancel := context.WithTimeout(r.Context(), wait+a.timeout)
	defer cancel()
	httpx.ExtendWrite(w, wait+2*a.timeout)
	if wait > 0 {
		httpx.WatchClient(w) // a client that leaves ends the wait: nothing is fetched for it
	}
	ds, err := a.b.Receive(ctx, n, ReceiveOptions{Max: req.Max, Wait: wait, Consumer: req.Consumer,
		VisibilityTimeout: req.VisibilityTimeout.D(), Stop: httpx.Stopping(r.Context())})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	bp := answers.Get().(*[]byte)
	b := appendDeliveries((*bp)[:0], ds)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	if cap(b) <= maxPooledAnswer {
		*bp = b
		answers.Put(bp)
	}
}

// answers are receive answers' buffers, reused (a Write does not keep
// its bytes); the largest are left to the collector.
var answers = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledAnswer = 256 << 10

func (a *API) receipts(w http.ResponseWriter, r *http.Request) (string, []string, bool) {
	n, ok := name(w, r)
	if !ok {
		return "", nil, false
	}
	body, p := httpx.ReadBody(w, r, 0)
	if p != nil {
		httpx.WriteProblem(w, p)
		return "", nil, false
	}
	var req receiptsRequest
	var fast bool
	if req.Receipts, fast = decodeReceipts(body); !fast {
		if p := httpx.DecodeJSONBytes(body, &req); p != nil {
			httpx.WriteProblem(w, p)
			return "", nil, false
		}
	}
	if len(req.Receipts) == 0 || len(req.Receipts) > maxBatch {
		httpx.WriteProblem(w, httpx.NewProblem(http.StatusUnprocessableEntity, "invalid-receipt",
			fmt.Sprintf("%d receipts: want 1 to %d", len(req.Receipts), maxBatch)))
		return "", nil, false
	}
	return n, req.Receipts, true
}

func (a *API) handleAck(w http.ResponseWriter, r *http.Request) {
	n, rs, ok := a.receipts(w, r)
	if !ok {
		return
	}
	if err := a.b.Ack(r.Context(), n, rs); err != nil {
		a.fail(w, r, err)
		return
	}
	writeRaw(w, http.StatusOK, append(strconv.AppendInt([]byte(`{"acked":`), int64(len(rs)), 10), "}\n"...))
}

func (a *API) handleExtend(w http.ResponseWriter, r *http.Request) {
	n, rs, ok := a.receipts(w, r)
	if !ok {
		return
	}
	fresh, err := a.b.Extend(r.Context(), n, rs)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"receipts": fresh})
}

func (a *API) handleNack(w http.ResponseWriter, r *http.Request) {
	n, ok := name(w, r)
	if !ok {
		return
	}
	var req nackRequest
	if p := httpx.DecodeJSON(w, r, &req, 0); p != nil {
		httpx.WriteProblem(w, p)
		return
	}
	if req.Receipt == "" {
		httpx.WriteProblem(w, httpx.NewProblem(http.StatusUnprocessableEntity, "invalid-receipt", "receipt is required"))
		return
	}
	if err := a.b.Nack(r.Context(), n, req.Receipt, req.Error, req.Delay.D()); err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"nacked": 1})
}

func (a *API) handleDeadLetters(w http.ResponseWriter, r *http.Request) {
	n, ok := name(w, r)
	if !ok {
		return
	}
	limit, p := queryLimit(r, 100, 1000)
	if p != nil {
		httpx.WriteProblem(w, p)
		return
	}
	ds, err := a.b.DeadLetters(r.Context(), n, limit)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]wireMessage, len(ds))
	for i, d := range ds {
		out[i] = fromDeadLetter(d)
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"messages": out})
}

func (a *API) handleRedrive(w http.ResponseWriter, r *http.Request) {
	n, ok := name(w, r)
	if !ok {
		return
	}
	var req redriveRequest
	if p := httpx.DecodeOptional(w, r, &req, 0); p != nil {
		httpx.WriteProblem(w, p)
		return
	}
	if req.IDs != nil && (len(req.IDs) == 0 || len(req.IDs) > maxBatch) {
		httpx.WriteProblem(w, httpx.NewProblem(http.StatusUnprocessableEntity, "invalid-redrive",
			fmt.Sprintf("%d ids: want 1 to %d, or no ids for all", len(req.IDs), maxBatch)))
		return
	}
	moved, err := a.b.Redrive(r.Context(), n, req.IDs)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"redriven": moved})
}

func (a *API) handlePurge(w http.ResponseWriter, r *http.Request) {
	n, ok := name(w, r)
	if !ok {
		return
	}
	if _, err := a.b.PurgeDeadLetters(r.Context(), n); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
