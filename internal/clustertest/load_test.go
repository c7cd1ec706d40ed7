package clustertest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plexushq/plexus/eventstore"
	"github.com/plexushq/plexus/internal/clustertest"
)

// plexusNode is a node of the failover test as its clients see it: its
// admin and gateway listeners behind proxies that Kill cuts.
type plexusNode struct {
	name    string
	admin   *clustertest.Proxy
	gateway *clustertest.Proxy
	down    atomic.Bool
	kill    func()
}

func (n *plexusNode) adminURL() string   { return "http://" + n.admin.Addr() }
func (n *plexusNode) gatewayURL() string { return "http://" + n.gateway.Addr() }

// ledger records what the load saw: every request's answer and duration,
// what was acknowledged and what was delivered.
type ledger struct {
	mu          sync.Mutex
	codes       map[string]map[int]int // kind -> status -> count (0: no answer)
	longest     map[string]time.Duration
	bad         []string // answers the contract forbids
	published   map[string]bool
	delivered   map[string]int
	events      map[string]map[string]int64 // stream -> event id -> acknowledged version
	appendFails int
}

func newLedger() *ledger {
	return &ledger{codes: map[string]map[int]int{}, longest: map[string]time.Duration{},
		published: map[string]bool{}, delivered: map[string]int{}, events: map[string]map[string]int64{}}
}

// answer records one request; bound is how long it may take.
func (l *ledger) answer(kind string, code int, h http.Header, body []byte, took, bound time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.codes[kind] == nil {
		l.codes[kind] = map[int]int{}
	}
	l.codes[kind][code]++
	if took > l.longest[kind] {
		l.longest[kind] = took
	}
	if took > bound {
		l.bad = append(l.bad, fmt.Sprintf("%s answered %d after %s (bound %s)", kind, code, took.Round(time.Millisecond), bound))
	}
	switch {
	case code == http.StatusServiceUnavailable:
		var p struct {
			RetryAfter int `json:"retryAfter"`
		}
		_ = json.Unmarshal(body, &p)
		if h.Get("Retry-After") == "" || p.RetryAfter <= 0 {
			l.bad = append(l.bad, fmt.Sprintf("%s: 503 without a retry hint in header and body: %s", kind, body))
		}
	case code >= 500:
		l.bad = append(l.bad, fmt.Sprintf("%s answered %d: %s", kind, code, body))
	case code == 0:
		l.bad = append(l.bad, fmt.Sprintf("%s: a live node dropped the request after %s", kind, took.Round(time.Millisecond)))
	}
}

// loadTest is the running load of TestClusterFailover.
type loadTest struct {
	t       *testing.T
	nodes   []*plexusNode // admin API nodes (control role)
	gw      []*plexusNode // gateways probed
	l       *ledger
	stop    chan struct{}
	drained chan struct{} // receivers stop once closed
	wg      sync.WaitGroup
	timeout time.Duration // the nodes' request deadline
	hc      *http.Client
}

// slack is what a request may take beyond the server's deadline on a
// loaded two-core machine (scheduling, the race detector).
const slack = 3 * time.Second

func (lt *loadTest) live() []*plexusNode {
	var out []*plexusNode
	for _, n := range lt.nodes {
		if !n.down.Load() {
			out = append(out, n)
		}
	}
	return out
}

func (lt *loadTest) stopped() bool {
	select {
	case <-lt.stop:
		return true
	default:
		return false
	}
}

// call sends one admin request and records its answer.
func (lt *loadTest) call(n *plexusNode, kind, method, path, body string, bound time.Duration) (int, []byte) {
	req, _ := http.NewRequest(method, n.adminURL()+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := lt.hc.Do(req)
	if err != nil {
		if !n.down.Load() {
			lt.l.answer(kind, 0, nil, nil, time.Since(start), bound)
		}
		return 0, nil
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !n.down.Load() {
		lt.l.answer(kind, resp.StatusCode, resp.Header, b, time.Since(start), bound)
	}
	return resp.StatusCode, b
}

// publisher publishes messages with ids of their own, retrying each with
// its id on any node until it is acknowledged (or 60s pass).
func (lt *loadTest) publisher(g int) {
	defer lt.wg.Done()
	for i := 0; !lt.stopped(); i++ {
		id := fmt.Sprintf("p%d-%d", g, i)
		body := `{"id":"` + id + `","payload":{"n":` + fmt.Sprint(i) + `}}`
		deadline := time.Now().Add(60 * time.Second)
		for try := 0; time.Now().Before(deadline); try++ {
			live := lt.live()
			n := live[(g+try)%len(live)]
			code, _ := lt.call(n, "publish", http.MethodPost, "/v1/queues/jobs/messages", body, lt.timeout+slack)
			if code/100 == 2 {
				lt.l.mu.Lock()
				lt.l.published[id] = true
				lt.l.mu.Unlock()
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

type receiveAnswer struct {
	Messages []struct {
		ID      string `json:"id"`
		Receipt string `json:"receipt"`
	} `json:"messages"`
}

// receiver receives and acks until the load is drained.
func (lt *loadTest) receiver(g int) {
	defer lt.wg.Done()
	for i := 0; ; i++ {
		select {
		case <-lt.drained:
			return
		default:
		}
		live := lt.live()
		n := live[(g+i)%len(live)]
		code, b := lt.call(n, "receive", http.MethodPost, "/v1/queues/jobs/receive",
			`{"max":10,"wait":"1s","consumer":"r`+fmt.Sprint(g)+`"}`, time.Second+lt.timeout+slack)
		var ra receiveAnswer
		if code != http.StatusOK || json.Unmarshal(b, &ra) != nil || len(ra.Messages) == 0 {
			if code != http.StatusOK {
				time.Sleep(100 * time.Millisecond)
			}
			continue
		}
		receipts := make([]string, len(ra.Messages))
		lt.l.mu.Lock()
		for k, m := range ra.Messages {
			lt.l.delivered[m.ID]++
			receipts[k] = m.Receipt
		}
		lt.l.mu.Unlock()
		ack, _ := json.Marshal(map[string]any{"receipts": receipts})
		for try := 0; try < 5; try++ {
			code, _ := lt.call(n, "ack", http.MethodPost, "/v1/queues/jobs/ack", string(ack), lt.timeout+slack)
			if code/100 == 2 || code == http.StatusConflict || n.down.Load() {
				break // a stale receipt: the message comes again, a duplicate by its id
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// appender appends to a stream of its own with exact expected versions
// through the SDK client, which retries by itself.
func (lt *loadTest) appender(g int) {
	defer lt.wg.Done()
	stream := fmt.Sprintf("acct-%d", g)
	lt.l.mu.Lock()
	lt.l.events[stream] = map[string]int64{}
	lt.l.mu.Unlock()
	var version int64
	for i := 0; !lt.stopped(); i++ {
		live := lt.live()
		n := live[(g+i/20)%len(live)]
		c := eventstore.NewClient(n.adminURL(), token, &http.Client{Timeout: 30 * time.Second,
			Transport: recorder{lt: lt, n: n, kind: "append", bound: lt.timeout + slack}})
		id := fmt.Sprintf("e%d-%d", g, i)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		start := time.Now()
		res, err := c.Append(ctx, stream, version, eventstore.Event{Type: "credited", ID: id, Data: json.RawMessage(`{"i":` + fmt.Sprint(i) + `}`)})
		cancel()
		var ce *eventstore.ConflictError
		switch {
		case err == nil:
			lt.l.mu.Lock()
			lt.l.events[stream][id] = res.Version
			lt.l.mu.Unlock()
			version = res.Version
		case errors.As(err, &ce):
			version = ce.Current // this writer is the stream's only one: an attempt the client gave up on landed
		default:
			lt.l.mu.Lock()
			lt.l.appendFails++
			lt.l.mu.Unlock()
			lt.t.Logf("append %s via %s failed after %s: %v", id, n.name, time.Since(start).Round(time.Millisecond), err)
			time.Sleep(200 * time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// recorder records every request an SDK client sends (its retries
// included) as call does.
type recorder struct {
	lt    *loadTest
	n     *plexusNode
	kind  string
	bound time.Duration
}

func (r recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	kind := r.kind
	if req.Method == http.MethodGet {
		kind += " check" // the client's look whether an earlier attempt landed
	}
	start := time.Now()
	resp, err := r.lt.hc.Transport.RoundTrip(req)
	if err != nil {
		if !r.n.down.Load() {
			r.lt.l.answer(kind, 0, nil, nil, time.Since(start), r.bound)
		}
		return nil, err
	}
	b, rerr := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !r.n.down.Load() {
		r.lt.l.answer(kind, resp.StatusCode, resp.Header, b, time.Since(start), r.bound)
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp, rerr
}

// prober sends requests through a gateway to the registered backends.
func (lt *loadTest) prober(gw *plexusNode) {
	defer lt.wg.Done()
	for !lt.stopped() {
		start := time.Now()
		resp, err := lt.hc.Get(gw.gatewayURL() + "/api/web/probe")
		code := 0
		var b []byte
		var h http.Header
		if err == nil {
			b, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			code, h = resp.StatusCode, resp.Header
		}
		lt.l.answer("gateway "+gw.name, code, h, b, time.Since(start), slack)
		if code != http.StatusOK {
			lt.l.mu.Lock()
			lt.l.bad = append(lt.l.bad, fmt.Sprintf("gateway %s answered %d %s", gw.name, code, b))
			lt.l.mu.Unlock()
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// report logs what the load saw and returns the numbers the issue asks
// for.
func (lt *loadTest) report() (acked, lost, dupDeliveries, events, eventDups int) {
	l := lt.l
	l.mu.Lock()
	defer l.mu.Unlock()
	for id := range l.published {
		acked++
		if l.delivered[id] == 0 {
			lost++
			if lost <= 10 {
				lt.t.Errorf("acknowledged message %s was never delivered", id)
			}
		}
	}
	for _, n := range l.delivered {
		if n > 1 {
			dupDeliveries += n - 1
		}
	}
	kinds := make([]string, 0, len(l.codes))
	for k := range l.codes {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		lt.t.Logf("%-16s answers %v, longest %s", k, l.codes[k], l.longest[k].Round(time.Millisecond))
	}
	for _, s := range l.events {
		events += len(s)
	}
	return acked, lost, dupDeliveries, events, eventDups
}

// checkEvents reads every appender's stream from a live node: each
// acknowledged event is there once, at its version, and no id twice.
func (lt *loadTest) checkEvents(ctx context.Context) (dups int) {
	c := eventstore.NewClient(lt.live()[0].adminURL(), token, nil)
	lt.l.mu.Lock()
	defer lt.l.mu.Unlock()
	for stream, acked := range lt.l.events {
		var got []eventstore.Envelope
		var err error
		for from := int64(1); ; {
			page, perr := c.ReadStream(ctx, stream, from, 1000)
			if err = perr; err != nil || len(page) == 0 {
				break
			}
			got = append(got, page...)
			from = page[len(page)-1].Version + 1
		}
		if err != nil && len(acked) > 0 && !errors.Is(err, eventstore.ErrStreamNotFound) {
			lt.t.Errorf("read %s: %v", stream, err)
			continue
		}
		seen := map[string]int64{}
		for _, e := range got {
			if _, twice := seen[e.ID]; twice {
				dups++
				lt.t.Errorf("event %s is stored twice in %s", e.ID, stream)
			}
			seen[e.ID] = e.Version
		}
		for id, v := range acked {
			if got, ok := seen[id]; !ok || got != v {
				lt.t.Errorf("acknowledged event %s of %s: stored at version %d (present %v), acknowledged at %d", id, stream, got, ok, v)
			}
		}
	}
	return dups
}
