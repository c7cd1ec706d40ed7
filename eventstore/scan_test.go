package eventstore_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plexushq/plexus/eventstore"
	"github.com/plexushq/plexus/internal/httpx"
)

// fillMixed appends singles, a same-type batch and a mixed-type batch to
// a few streams and returns every event in global order.
func fillMixed(t *testing.T, s *eventstore.Store) []eventstore.Envelope {
	t.Helper()
	for i := range 5 {
		mustAppend(t, s, "cart-1", int64(i), ev("cart.added", i))
	}
	mustAppend(t, s, "cart-2", 0, ev("cart.added", "a"), ev("cart.added", "b"), ev("cart.added", "c"))
	mustAppend(t, s, "order-1", 0, ev("order.placed", 1), ev("order.paid", 1), ev("order.placed", 2))
	mustAppend(t, s, "cart-1", 5, ev("cart.emptied", nil))
	p, err := s.ReadAll(ctxT(t), eventstore.Query{Limit: eventstore.MaxReadLimit})
	if err != nil || len(p.Events) != 12 {
		t.Fatalf("fill: %d events, %v", len(p.Events), err)
	}
	return p.Events
}

func positionsOf(evs []eventstore.Envelope) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.Position
	}
	return out
}

func scanAll(t *testing.T, s *eventstore.Store, q eventstore.Query) []eventstore.Envelope {
	t.Helper()
	var got []eventstore.Envelope
	if err := s.Scan(ctxT(t), q, func(e eventstore.Envelope) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestScanReadsWhatPagesRead: Scan gives the events paged reads give, for
// every filter and starting point, and ends at the last event stored.
func TestScanReadsWhatPagesRead(t *testing.T) {
	s := startStore(t, nil, eventstore.Config{})
	all := fillMixed(t, s)
	for _, q := range []eventstore.Query{
		{},
		{FromPosition: all[6].Position}, // inside the same-type batch
		{FromPosition: all[9].Position}, // inside the mixed batch
		{Types: []string{"order.placed"}},
		{Types: []string{"order.paid", "cart.emptied"}},
		{Category: "cart", FromPosition: all[3].Position},
		{Category: "order", Types: []string{"cart.added"}},
		{FromPosition: all[11].Position + 1},
	} {
		page, err := s.ReadAll(ctxT(t), eventstore.Query{FromPosition: q.FromPosition, Types: q.Types, Category: q.Category,
			Limit: eventstore.MaxReadLimit})
		if err != nil {
			t.Fatal(err)
		}
		got := scanAll(t, s, q)
		if !slices.Equal(positionsOf(got), positionsOf(page.Events)) {
			t.Fatalf("%+v: scan %v, pages %v", q, positionsOf(got), positionsOf(page.Events))
		}
		for i := range got {
			if !sameEnvelope(got[i], page.Events[i]) {
				t.Fatalf("%+v: event %d differs: %+v / %+v", q, i, got[i], page.Events[i])
			}
		}
	}
	// Since: only what was stored at or after it.
	mid := time.Now()
	time.Sleep(5 * time.Millisecond)
	late := mustAppend(t, s, "cart-3", 0, ev("cart.added", "late"))
	if got := scanAll(t, s, eventstore.Query{Since: mid}); len(got) != 1 || got[0].Position != late.Position {
		t.Fatalf("since: %+v", got)
	}
	// fn's error ends it.
	stop := errors.New("enough")
	n := 0
	err := s.Scan(ctxT(t), eventstore.Query{}, func(eventstore.Envelope) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("fn's error: %v after %d", err, n)
	}
}

// TestScanEndsWhileWritersAppend: a scan ends at the last event stored
// when it began even though appends keep coming.
func TestScanEndsWhileWritersAppend(t *testing.T) {
	s := startStore(t, nil, eventstore.Config{})
	before := appendN(t, s, 50, "item.added")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil; i++ {
			_, _ = s.Append(ctx, "busy-1", eventstore.AnyVersion, ev("busy.x", i))
		}
	}()
	got := scanAll(t, s, eventstore.Query{Types: []string{"item.added"}})
	cancel()
	<-done
	if !slices.Equal(positionsOf(got), before) {
		t.Fatalf("scan: %v, want %v", positionsOf(got), before)
	}
}

// TestHTTPReadAllNDJSON: GET /v1/events with Accept: application/x-ndjson
// streams the events one per line; the Go client reads it with Scan.
func TestHTTPReadAllNDJSON(t *testing.T) {
	a := startAPI(t, eventstore.APIConfig{})
	all := fillMixed(t, a.s)
	get := func(query string) (*http.Response, []eventstore.Envelope) {
		t.Helper()
		req, _ := http.NewRequest("GET", a.url+"/v1/events?"+query, nil)
		req.Header.Set("Accept", "application/json;q=0.5, application/x-ndjson")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out []eventstore.Envelope
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var e eventstore.Envelope
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				if resp.StatusCode == 200 {
					t.Fatalf("line %q: %v", sc.Text(), err)
				}
				continue
			}
			out = append(out, e)
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		return resp, out
	}
	resp, got := get("")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" || !slices.Equal(positionsOf(got), positionsOf(all)) {
		t.Fatalf("all: %d %q %v", resp.StatusCode, resp.Header.Get("Content-Type"), positionsOf(got))
	}
	for i := range got {
		if !sameEnvelope(got[i], all[i]) {
			t.Fatalf("event %d: %+v, want %+v", i, got[i], all[i])
		}
	}
	if _, got := get("category=order&types=order.placed&limit=1"); len(got) != 1 || got[0].Type != "order.placed" {
		t.Fatalf("filtered, limit 1: %+v", got)
	}
	if _, got := get("limit=5000"); len(got) != 12 {
		t.Fatalf("a limit past the page bound: %d events", len(got))
	}
	for _, bad := range []string{"fromPosition=end", "limit=0", "limit=x", "types=a%20b", "fromPosition=-1"} {
		if resp, _ := get(bad); resp.StatusCode != 400 || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("%s: %d %s", bad, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	// The paged form is still there for clients that ask for JSON.
	st, m, _ := call(t, "GET", a.url+"/v1/events?limit=2", "", "")
	if evs, _ := m["events"].([]any); st != 200 || len(evs) != 2 || m["nextPosition"] != float64(all[1].Position+1) {
		t.Fatalf("page: %d %v", st, m)
	}

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := eventstore.NewClient(a.url, "", &http.Client{Transport: tr})
	var viaClient []eventstore.Envelope
	if err := c.Scan(ctxT(t), eventstore.Query{FromPosition: all[4].Position}, func(e eventstore.Envelope) error {
		viaClient = append(viaClient, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(positionsOf(viaClient), positionsOf(all[4:])) {
		t.Fatalf("client scan: %v", positionsOf(viaClient))
	}
	if err := c.Scan(ctxT(t), eventstore.Query{Types: []string{"bad type"}}, func(eventstore.Envelope) error { return nil }); !errors.Is(err, eventstore.ErrInvalid) {
		t.Fatalf("client scan with a bad query: %v", err)
	}
}

// TestHTTPNDJSONTakesAStreamSlot: a streamed read counts against the
// node's cap of long-lived answers.
func TestHTTPNDJSONTakesAStreamSlot(t *testing.T) {
	a := startAPI(t, eventstore.APIConfig{Streams: httpx.NewSlots(1)})
	sse := openSSE(t, a.url+"/v1/events/subscribe", "") // takes the one slot
	req, _ := http.NewRequest("GET", a.url+"/v1/events", nil)
	req.Header.Set("Accept", "application/x-ndjson")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("past the cap: %d", resp.StatusCode)
	}
	if !strings.Contains(resp.Header.Get("Content-Type"), "problem") {
		t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
	}
	sse.resp.Body.Close()
	waitFor(t, func() bool {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// TestReadAllBackward pages the global order from the newest event down,
// through appends of several events, with filters.
func TestReadAllBackward(t *testing.T) {
	a := startAPI(t, eventstore.APIConfig{})
	s := a.s
	all := fillMixed(t, s)
	rev := slices.Clone(all)
	slices.Reverse(rev)
	var got []eventstore.Envelope
	q := eventstore.Query{Backward: true, Limit: 5}
	for pages := 0; ; pages++ {
		p, err := s.ReadAll(ctxT(t), q)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p.Events...)
		if p.NextPosition == 0 {
			break
		}
		if pages > 5 {
			t.Fatalf("pages never end: %+v", p)
		}
		q.FromPosition = p.NextPosition
	}
	if !slices.Equal(positionsOf(got), positionsOf(rev)) {
		t.Fatalf("backwards: %v, want %v", positionsOf(got), positionsOf(rev))
	}
	for _, tc := range []struct {
		q    eventstore.Query
		want []eventstore.Envelope
	}{
		{eventstore.Query{Backward: true, FromPosition: all[9].Position, Limit: 3}, []eventstore.Envelope{all[9], all[8], all[7]}},
		{eventstore.Query{Backward: true, Types: []string{"order.placed"}}, []eventstore.Envelope{all[10], all[8]}},
		{eventstore.Query{Backward: true, Category: "cart", Limit: 2}, []eventstore.Envelope{all[11], all[7]}},
		{eventstore.Query{Backward: true, FromPosition: all[0].Position}, []eventstore.Envelope{all[0]}},
	} {
		p, err := s.ReadAll(ctxT(t), tc.q)
		if err != nil || !slices.Equal(positionsOf(p.Events), positionsOf(tc.want)) {
			t.Fatalf("%+v: %v %v, want %v", tc.q, positionsOf(p.Events), err, positionsOf(tc.want))
		}
	}
	st, m, _ := call(t, "GET", a.url+"/v1/events?direction=backward&limit=2", "", "")
	if evs, _ := m["events"].([]any); st != 200 || len(evs) != 2 || m["nextPosition"] != float64(all[10].Position-1) {
		t.Fatalf("HTTP backwards: %d %v", st, m)
	}
}

// cutWriter aborts an answer after its first write: a stream that breaks
// in the middle, as a dying node or proxy would cut it.
type cutWriter struct {
	http.ResponseWriter
	writes int
}

func (w *cutWriter) Write(b []byte) (int, error) {
	if w.writes++; w.writes > 1 {
		panic(http.ErrAbortHandler)
	}
	return w.ResponseWriter.Write(b[:len(b)/2]) // and that write ends inside a line
}

func (w *cutWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// TestClientScanResumesABrokenStream: the NDJSON answer breaks in the
// middle of a line; the client continues after the last whole event, with
// no event missed or repeated.
func TestClientScanResumesABrokenStream(t *testing.T) {
	s := startStore(t, nil, eventstore.Config{})
	var want []uint64
	for i := range 4 {
		evs := make([]eventstore.Event, 100)
		for j := range evs {
			evs[j] = ev("bulk.added", strings.Repeat("x", 200))
		}
		r := mustAppend(t, s, fmt.Sprintf("bulk-%d", i), eventstore.NoStream, evs...)
		for p := r.FirstPosition; p <= r.Position; p++ {
			want = append(want, p)
		}
	}
	api := eventstore.NewAPI(s, eventstore.APIConfig{}).Handler()
	var cuts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cuts.Add(1) <= 2 { // the first two answers break
			w = &cutWriter{ResponseWriter: w}
		}
		api.ServeHTTP(w, r)
	}))
	defer srv.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := eventstore.NewClient(srv.URL, "", &http.Client{Transport: tr})
	var got []uint64
	if err := c.Scan(ctxT(t), eventstore.Query{}, func(e eventstore.Envelope) error {
		got = append(got, e.Position)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) || cuts.Load() != 3 {
		t.Fatalf("after %d answers: %d events, want %d (first %v)", cuts.Load(), len(got), len(want), got[:min(3, len(got))])
	}
}
