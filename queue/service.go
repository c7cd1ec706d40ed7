package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/plexushq/plexus/internal/httpx"
)

// Service is the queue component of a node: the HTTP API of API.md on a
// Client, plus periodic housekeeping (expiry of waiting messages, counter
// flushes).
type Service struct {
	c        *Client
	log      *slog.Logger
	interval time.Duration
	queues   map[string]Config
	timeout  time.Duration
	errs     httpx.Errors

	stop chan struct{}
	wg   sync.WaitGroup
	// halt ends a housekeeping round in flight when Stop is called (it may
	// wait on an engine that is failing over).
	halt     context.Context
	haltFunc context.CancelFunc
}

// ServiceOptions tune a Service. The zero value works.
type ServiceOptions struct {
	// MaintainInterval is how often expired messages are swept and counters
	// flushed. Default 1s.
	MaintainInterval time.Duration
	// Queues are created (or updated) at Start, as the queues: section says.
	Queues map[string]Config
	// RequestTimeout bounds the engine calls of one HTTP request (a
	// receive: its wait plus this); past it the answer is 503 with
	// Retry-After. Default 5s.
	RequestTimeout time.Duration
}

// NewService wraps c; Stop closes c.
func NewService(c *Client, opts ServiceOptions) *Service {
	if opts.MaintainInterval <= 0 {
		opts.MaintainInterval = time.Second
	}
	halt, haltFunc := context.WithCancel(context.Background())
	return &Service{c: c, log: c.log, interval: opts.MaintainInterval, queues: opts.Queues, stop: make(chan struct{}),
		timeout: httpx.RequestTimeout(opts.RequestTimeout), errs: httpx.Errors{Log: c.log, Domain: problem},
		halt: halt, haltFunc: haltFunc}
}

// Client is the service's queue client.
func (s *Service) Client() *Client { return s.c }

// Start creates the configured queues and starts housekeeping.
func (s *Service) Start(ctx context.Context) error {
	if err := s.Configure(ctx, s.queues); err != nil {
		return err
	}
	s.wg.Add(1)
	go s.maintain()
	return nil
}

// Configure creates or updates the queues of a configuration file's
// queues: section. Every entry is checked first, so an invalid section
// changes nothing.
func (s *Service) Configure(ctx context.Context, queues map[string]Config) error {
	names := make([]string, 0, len(queues))
	for n, cfg := range queues {
		if !ValidName(n) {
			return fmt.Errorf("queues: %w: %q", ErrInvalidName, n)
		}
		cfg.Normalize(n)
		if err := cfg.Validate(n); err != nil {
			return fmt.Errorf("queues: %s: %w", n, err)
		}
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if _, _, err := s.c.CreateQueue(ctx, n, queues[n]); err != nil {
			return fmt.Errorf("queue %q from configuration: %w", n, err)
		}
	}
	return nil
}

func (s *Service) maintain() {
	defer s.wg.Done()
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(s.halt, 30*time.Second)
		if err := s.c.Maintain(ctx); err != nil && !errors.Is(err, ErrClosed) && s.halt.Err() == nil {
			s.log.Warn("queue housekeeping", "err", err)
		}
		cancel()
	}
}

// Stop ends housekeeping, flushes counters and closes the client.
func (s *Service) Stop(ctx context.Context) error {
	select {
	case <-s.stop:
		return nil
	default:
	}
	close(s.stop)
	s.haltFunc()
	s.wg.Wait()
	s.c.mu.Lock()
	qs := make([]*qstate, 0, len(s.c.queues))
	for _, q := range s.c.queues {
		qs = append(qs, q)
	}
	s.c.mu.Unlock()
	var errs []error
	for _, q := range qs {
		if err := s.c.flushCounters(ctx, q); err != nil {
			errs = append(errs, err)
		}
	}
	s.c.Close()
	return errors.Join(errs...)
}

// Routes registers the HTTP API with handle (the node's admin mux). Every
// route runs under the request deadline; a receive under its wait plus
// that.
func (s *Service) Routes(handle func(pattern string, h http.Handler)) {
	handle("POST /v1/queues/{queue}/receive", http.HandlerFunc(s.handleReceive))
	for pattern, h := range map[string]http.HandlerFunc{
		"PUT /v1/queues/{queue}":                       s.handlePut,
		"GET /v1/queues":                               s.handleList,
		"GET /v1/queues/{queue}":                       s.handleGet,
		"DELETE /v1/queues/{queue}":                    s.handleDelete,
		"POST /v1/queues/{queue}/messages":             s.handlePublish,
		"POST /v1/queues/{queue}/ack":                  s.handleAck,
		"POST /v1/queues/{queue}/nack":                 s.handleNack,
		"POST /v1/queues/{queue}/extend":               s.handleExtend,
		"GET /v1/queues/{queue}/dead-letters":          s.handleDeadLetters,
		"POST /v1/queues/{queue}/dead-letters/redrive": s.handleRedrive,
		"DELETE /v1/queues/{queue}/dead-letters":       s.handlePurge,
	} {
		handle(pattern, httpx.Deadline(s.timeout, h))
	}
}

// Handler is the HTTP API on its own mux (tests, embedding).
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	s.Routes(func(p string, h http.Handler) { mux.Handle(p, h) })
	return mux
}

// fail answers err: the queue's errors through problem, the engine's and
// the rest through the shared mapping (every 5xx logged once there).
func (s *Service) fail(w http.ResponseWriter, r *http.Request, err error) {
	s.errs.Write(w, r, err)
}

// name reads and checks the {queue} path value (400 when invalid).
func name(w http.ResponseWriter, r *http.Request) (string, bool) {
	n := r.PathValue("queue")
	if !ValidName(n) {
		httpx.WriteProblem(w, problem(fmt.Errorf("%w: %q", ErrInvalidName, n)))
		return "", false
	}
	return n, true
}

func (s *Service) handlePut(w http.ResponseWriter, r *http.Request) {
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
	if old, err := s.c.Stats(r.Context(), n); err == nil {
		cfg.DeadLetterOf = old.Config.DeadLetterOf // a dead-letter queue stays one
	}
	info, created, err := s.c.CreateQueue(r.Context(), n, cfg)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	httpx.WriteJSON(w, status, info)
}

func (s *Service) handleList(w http.ResponseWriter, r *http.Request) {
	infos, err := s.c.List(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if infos == nil {
		infos = []*Info{}
	}
	httpx.WriteJSON(w, http.StatusOK, infos)
}

func (s *Service) handleGet(w http.ResponseWriter, r *http.Request) {
	n, ok := name(w, r)
	if !ok {
		return
	}
	info, err := s.c.Stats(r.Context(), n)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, info)
}

func (s *Service) handleDelete(w http.ResponseWriter, r *http.Request) {
	n, ok := name(w, r)
	if !ok {
		return
	}
	if err := s.c.DeleteQueue(r.Context(), n); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Service) handlePublish(w http.ResponseWriter, r *http.Request) {
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
	ids, err := s.c.PublishBatch(r.Context(), n, msgs)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if batch {
		httpx.WriteJSON(w, http.StatusCreated, map[string]any{"ids": ids})
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, map[string]any{"id": ids[0]})
}

func (s *Service) handleReceive(w http.ResponseWriter, r *http.Request) {
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
		actx, cancel := context.WithTimeout(r.Context(), s.timeout)
		err := s.c.Ack(actx, n, req.Ack)
		cancel()
		if err != nil {
			s.fail(w, r, err) // nothing was received
			return
		}
	}
	// The wait is the client's; the engine calls around it get the request
	// deadline, and the answer may be written that much later.
	ctx, cancel := context.WithTimeout(r.Context(), wait+s.timeout)
	defer cancel()
	httpx.ExtendWrite(w, wait+2*s.timeout)
	ds, err := s.c.Receive(ctx, n, ReceiveOptions{Max: req.Max, Wait: wait, Consumer: req.Consumer,
		VisibilityTimeout: req.VisibilityTimeout.D(), Stop: httpx.Stopping(r.Context())})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	size := 32
	for _, d := range ds {
		size += 256 + len(d.Payload) + len(d.Receipt)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(appendDeliveries(make([]byte, 0, size), ds))
}

func (s *Service) receipts(w http.ResponseWriter, r *http.Request) (string, []string, bool) {
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

func (s *Service) handleAck(w http.ResponseWriter, r *http.Request) {
	n, rs, ok := s.receipts(w, r)
	if !ok {
		return
	}
	if err := s.c.Ack(r.Context(), n, rs); err != nil {
		s.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"acked": len(rs)})
}

func (s *Service) handleExtend(w http.ResponseWriter, r *http.Request) {
	n, rs, ok := s.receipts(w, r)
	if !ok {
		return
	}
	fresh, err := s.c.Extend(r.Context(), n, rs)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"receipts": fresh})
}

func (s *Service) handleNack(w http.ResponseWriter, r *http.Request) {
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
	if err := s.c.Nack(r.Context(), n, req.Receipt, req.Error, req.Delay.D()); err != nil {
		s.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"nacked": 1})
}

func (s *Service) handleDeadLetters(w http.ResponseWriter, r *http.Request) {
	n, ok := name(w, r)
	if !ok {
		return
	}
	limit, p := queryLimit(r, 100, 1000)
	if p != nil {
		httpx.WriteProblem(w, p)
		return
	}
	ds, err := s.c.DeadLetters(r.Context(), n, limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]wireMessage, len(ds))
	for i, d := range ds {
		out[i] = fromDeadLetter(d)
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"messages": out})
}

func (s *Service) handleRedrive(w http.ResponseWriter, r *http.Request) {
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
	moved, err := s.c.Redrive(r.Context(), n, req.IDs)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"redriven": moved})
}

func (s *Service) handlePurge(w http.ResponseWriter, r *http.Request) {
	n, ok := name(w, r)
	if !ok {
		return
	}
	if _, err := s.c.PurgeDeadLetters(r.Context(), n); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
