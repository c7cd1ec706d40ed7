package telemetry

import (
	"container/list"
	"slices"
	"strings"
	"sync"
	"time"
)

// StoreConfig bounds the trace store. Zero values take the defaults.
type StoreConfig struct {
	// MaxTraces is the most traces kept. Default 10000.
	MaxTraces int
	// MaxBytes bounds the estimated memory of all kept spans. Default 64 MiB.
	MaxBytes int64
	// MaxSpansPerTrace drops further spans of a trace. Default 2000.
	MaxSpansPerTrace int
}

func (c *StoreConfig) defaults() {
	if c.MaxTraces <= 0 {
		c.MaxTraces = 10000
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 64 << 20
	}
	if c.MaxSpansPerTrace <= 0 {
		c.MaxSpansPerTrace = 2000
	}
}

// Store keeps recent traces in memory, bounded by count and by bytes: when
// either bound is exceeded the least recently updated traces are evicted
// whole. It is safe for concurrent use.
type Store struct {
	cfg    StoreConfig
	mu     sync.Mutex
	traces map[string]*storedTrace
	order  list.List // of *storedTrace, least recently updated first
	bytes  int64
	stats  StoreStats
	ops    map[string]map[string]struct{} // service → operation names seen, bounded
}

// Bounds of the service/operation index behind the search form.
const (
	maxIndexedServices = 256
	maxIndexedOps      = 256
)

// StoreStats are the store's counters.
type StoreStats struct {
	Traces        int   `json:"traces"`
	Bytes         int64 `json:"bytes"`
	SpansAdded    int64 `json:"spansAdded"`
	SpansDropped  int64 `json:"spansDropped"`
	TracesEvicted int64 `json:"tracesEvicted"`
}

type storedTrace struct {
	id       string
	spans    []Span
	index    map[string]int // span id → position, for duplicate exports
	bytes    int64
	elem     *list.Element
	start    time.Time
	end      time.Time
	root     int // index of the root span, -1 when not seen yet
	earliest int
	errors   int
	services []string
}

// maxServicesPerTrace bounds the per-trace service list used by filters.
const maxServicesPerTrace = 64

// NewStore returns an empty store.
func NewStore(cfg StoreConfig) *Store {
	cfg.defaults()
	return &Store{cfg: cfg, traces: map[string]*storedTrace{}, ops: map[string]map[string]struct{}{}}
}

// Add stores spans, grouping them into their traces, and evicts the least
// recently updated traces while a bound is exceeded. A span already stored
// (same trace and span id, e.g. a retried export) is ignored.
func (s *Store) Add(spans ...Span) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range spans {
		s.addLocked(&spans[i])
	}
	for len(s.traces) > s.cfg.MaxTraces || s.bytes > s.cfg.MaxBytes {
		front := s.order.Front()
		if front == nil {
			break
		}
		s.evictLocked(front.Value.(*storedTrace))
	}
}

func (s *Store) addLocked(sp *Span) {
	t := s.traces[sp.TraceID]
	if t == nil {
		t = &storedTrace{id: sp.TraceID, root: -1, index: map[string]int{}}
		t.elem = s.order.PushBack(t)
		s.traces[sp.TraceID] = t
	} else {
		s.order.MoveToBack(t.elem)
	}
	if _, dup := t.index[sp.SpanID]; dup || len(t.spans) >= s.cfg.MaxSpansPerTrace {
		s.stats.SpansDropped++
		return
	}
	i := len(t.spans)
	t.index[sp.SpanID] = i
	t.spans = append(t.spans, *sp)
	size := sp.size() + int64(len(sp.SpanID)) + 16
	t.bytes += size
	s.bytes += size
	s.stats.SpansAdded++
	if i == 0 || sp.Start.Before(t.start) {
		t.start = sp.Start
		t.earliest = i
	}
	if e := sp.end(); e.After(t.end) {
		t.end = e
	}
	if sp.ParentSpanID == "" && (t.root < 0 || sp.Start.Before(t.spans[t.root].Start)) {
		t.root = i
	}
	if sp.Status == StatusError {
		t.errors++
	}
	if !slices.Contains(t.services, sp.Service) && len(t.services) < maxServicesPerTrace {
		t.services = append(t.services, sp.Service)
	}
	s.indexLocked(sp.Service, sp.Name)
}

func (s *Store) indexLocked(service, op string) {
	ops := s.ops[service]
	if ops == nil {
		if len(s.ops) >= maxIndexedServices {
			return
		}
		ops = map[string]struct{}{}
		s.ops[service] = ops
	}
	if len(ops) < maxIndexedOps {
		ops[op] = struct{}{}
	}
}

// ServiceOperations is one service of the search form's lists.
type ServiceOperations struct {
	Service    string   `json:"service"`
	Operations []string `json:"operations"`
}

// Services lists the services and operation names seen (also of traces
// evicted since), sorted, for the search form.
func (s *Store) Services() []ServiceOperations {
	s.mu.Lock()
	out := make([]ServiceOperations, 0, len(s.ops))
	for svc, ops := range s.ops {
		so := ServiceOperations{Service: svc, Operations: make([]string, 0, len(ops))}
		for op := range ops {
			so.Operations = append(so.Operations, op)
		}
		out = append(out, so)
	}
	s.mu.Unlock()
	for i := range out {
		slices.Sort(out[i].Operations)
	}
	slices.SortFunc(out, func(a, b ServiceOperations) int { return strings.Compare(a.Service, b.Service) })
	return out
}

func (s *Store) evictLocked(t *storedTrace) {
	s.order.Remove(t.elem)
	delete(s.traces, t.id)
	s.bytes -= t.bytes
	s.stats.TracesEvicted++
}

// Stats returns the store's counters.
func (s *Store) Stats() StoreStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Traces, st.Bytes = len(s.traces), s.bytes
	return st
}

// TraceSummary is one line of the trace list.
type TraceSummary struct {
	TraceID       string        `json:"traceId"`
	RootService   string        `json:"rootService"`
	RootOperation string        `json:"rootOperation"`
	Start         time.Time     `json:"start"`
	Duration      time.Duration `json:"duration"`
	DurationMs    float64       `json:"durationMs"`
	Spans         int           `json:"spans"`
	Errors        int           `json:"errors"`
	Services      []string      `json:"services"`
}

// Query filters the trace list. Zero values do not filter.
type Query struct {
	// Service keeps traces with at least one span of this service.
	Service string
	// Operation keeps traces with a span of this name (of Service, when
	// Service is set), e.g. "GET /api/{service}/*".
	Operation string
	// MinDuration and MaxDuration keep traces at least / at most this long.
	MinDuration, MaxDuration time.Duration
	// From and To keep traces that started in [From, To].
	From, To time.Time
	// Errors keeps only traces with an error span.
	Errors bool
	// Limit is the most summaries returned, newest first. Default 20.
	Limit int
}

// match reports whether t passes q's filters.
func (q *Query) match(t *storedTrace) bool {
	d := t.end.Sub(t.start)
	switch {
	case q.Service != "" && !slices.Contains(t.services, q.Service),
		d < q.MinDuration, q.MaxDuration > 0 && d > q.MaxDuration,
		q.Errors && t.errors == 0,
		!q.From.IsZero() && t.start.Before(q.From),
		!q.To.IsZero() && t.start.After(q.To):
		return false
	}
	if q.Operation == "" {
		return true
	}
	for i := range t.spans {
		sp := &t.spans[i]
		if sp.Name == q.Operation && (q.Service == "" || sp.Service == q.Service) {
			return true
		}
	}
	return false
}

// List returns summaries of the matching traces, newest start first.
func (s *Store) List(q Query) []TraceSummary {
	if q.Limit <= 0 {
		q.Limit = 20
	}
	s.mu.Lock()
	out := make([]TraceSummary, 0, min(q.Limit, len(s.traces)))
	var matched []*storedTrace
	for e := s.order.Back(); e != nil; e = e.Prev() {
		if t := e.Value.(*storedTrace); q.match(t) {
			matched = append(matched, t)
		}
	}
	slices.SortStableFunc(matched, func(a, b *storedTrace) int { return b.start.Compare(a.start) })
	for _, t := range matched[:min(len(matched), q.Limit)] {
		out = append(out, t.summary())
	}
	s.mu.Unlock()
	return out
}

func (t *storedTrace) summary() TraceSummary {
	r := t.root
	if r < 0 {
		r = t.earliest
	}
	d := t.end.Sub(t.start)
	return TraceSummary{
		TraceID: t.id, RootService: t.spans[r].Service, RootOperation: t.spans[r].Name,
		Start: t.start, Duration: d, DurationMs: float64(d) / float64(time.Millisecond),
		Spans: len(t.spans), Errors: t.errors, Services: slices.Clone(t.services),
	}
}

// Get returns a copy of one trace, or false when it is not stored.
func (s *Store) Get(traceID string) (TraceDetail, bool) {
	s.mu.Lock()
	t := s.traces[traceID]
	if t == nil {
		s.mu.Unlock()
		return TraceDetail{}, false
	}
	d := TraceDetail{TraceID: t.id, Summary: t.summary(), Spans: slices.Clone(t.spans)}
	s.mu.Unlock()
	slices.SortStableFunc(d.Spans, func(a, b Span) int { return a.Start.Compare(b.Start) })
	return d, true
}

// TraceDetail is the answer of GET /v1/traces/{traceId}.
type TraceDetail struct {
	TraceID string       `json:"traceId"`
	Summary TraceSummary `json:"summary"`
	Spans   []Span       `json:"spans"`
}
