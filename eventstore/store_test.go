package eventstore_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/plexushq/plexus/eventstore"
	"github.com/plexushq/plexus/internal/enginetest"
)

func TestAppendAndReadStream(t *testing.T) {
	s := startStore(t, nil, eventstore.Config{})
	ctx := ctxT(t)
	r1 := mustAppend(t, s, "user-1", eventstore.NoStream, ev("user.created", map[string]string{"name": "ann"}))
	if r1.Version != 1 || r1.Position == 0 || r1.FirstPosition != r1.Position {
		t.Fatalf("first append: %+v", r1)
	}
	o := mustAppend(t, s, "order-9", eventstore.AnyVersion, ev("order.placed", 1))
	r2 := mustAppend(t, s, "user-1", 1,
		eventstore.Event{Type: "user.updated", Data: json.RawMessage(`{"name":"bea"}`), Metadata: json.RawMessage(`{"ip": "10.0.0.1"}`),
			CorrelationID: "corr-1", CausationID: "cmd-7", Source: "tests", ID: "evt-fixed"},
		ev("user.login", nil))
	if r2.Version != 3 || r2.FirstPosition <= o.Position || r2.Position != r2.FirstPosition+1 || o.Position <= r1.Position {
		t.Fatalf("batch append: %+v after %+v and %+v", r2, r1, o)
	}
	got, err := s.ReadStream(ctx, "user-1", 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("read %d events, want 3", len(got))
	}
	for i, e := range got {
		if e.Version != int64(i+1) || e.Stream != "user-1" {
			t.Fatalf("event %d: %+v", i, e)
		}
	}
	u := got[1]
	if u.ID != "evt-fixed" || u.Type != "user.updated" || u.Source != "tests" || u.CorrelationID != "corr-1" ||
		u.CausationID != "cmd-7" || string(u.Metadata) != `{"ip":"10.0.0.1"}` || string(u.Data) != `{"name":"bea"}` || u.Position != r2.FirstPosition {
		t.Fatalf("envelope fields: %+v", u)
	}
	if got[0].Source != "unknown" || got[0].CorrelationID == "" || got[0].ID == "" || got[0].ID == got[2].ID {
		t.Fatalf("defaults: %+v / %+v", got[0], got[2])
	}
	if string(got[2].Data) != "null" || string(got[2].Metadata) != "{}" {
		t.Fatalf("empty data and metadata: %s %s", got[2].Data, got[2].Metadata)
	}
	if time.Since(got[0].Timestamp) > time.Minute {
		t.Fatalf("timestamp %v", got[0].Timestamp)
	}
	from2, _ := s.ReadStream(ctx, "user-1", 2, 1)
	if len(from2) != 1 || from2[0].Version != 2 {
		t.Fatalf("from version 2 limit 1: %+v", from2)
	}
	back, _ := s.ReadStreamBackward(ctx, "user-1", 0, 2)
	if len(back) != 2 || back[0].Version != 3 || back[1].Version != 2 {
		t.Fatalf("backward: %+v", back)
	}
	if _, err := s.ReadStream(ctx, "user-404", 1, 10); !errors.Is(err, eventstore.ErrStreamNotFound) {
		t.Fatalf("unknown stream: %v", err)
	}
	past, err := s.ReadStream(ctx, "user-1", 9, 10)
	if err != nil || len(past) != 0 {
		t.Fatalf("past the end: %v %v", past, err)
	}
}

func TestReadStreamFromVersionManyInterleaved(t *testing.T) {
	s := startStore(t, nil, eventstore.Config{})
	ctx := ctxT(t)
	for i := 1; i <= 60; i++ {
		mustAppend(t, s, "acct-a", int64(i-1), ev("acct.deposited", i))
		mustAppend(t, s, fmt.Sprintf("acct-b%d", i%7), eventstore.AnyVersion, ev("acct.deposited", i))
	}
	for _, from := range []int64{1, 2, 17, 31, 59, 60} {
		got, err := s.ReadStream(ctx, "acct-a", from, 5)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 || got[0].Version != from {
			t.Fatalf("from %d: first %+v", from, got)
		}
	}
	back, _ := s.ReadStreamBackward(ctx, "acct-a", 40, 3)
	if len(back) != 3 || back[0].Version != 40 || back[2].Version != 38 {
		t.Fatalf("backward from 40: %+v", back)
	}
}

func TestExpectedVersions(t *testing.T) {
	s := startStore(t, nil, eventstore.Config{})
	ctx := ctxT(t)
	mustAppend(t, s, "cart-1", eventstore.NoStream, ev("cart.opened", nil))
	for _, tc := range []struct {
		name     string
		expected int64
		current  int64
	}{
		{"no stream on an existing stream", eventstore.NoStream, 1},
		{"behind", 0 + 5, 1},
		{"ahead", 2, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Append(ctx, "cart-1", tc.expected, ev("cart.item-added", 1))
			var ce *eventstore.ConflictError
			if !errors.As(err, &ce) || ce.Current != tc.current || !errors.Is(err, eventstore.ErrConflict) {
				t.Fatalf("got %v, want conflict at %d", err, tc.current)
			}
		})
	}
	if _, err := s.Append(ctx, "cart-2", 3, ev("cart.opened", nil)); err == nil {
		t.Fatal("expected version 3 on a new stream succeeded")
	}
	r := mustAppend(t, s, "cart-1", eventstore.AnyVersion, ev("cart.item-added", 1))
	if r.Version != 2 {
		t.Fatalf("any version: %+v", r)
	}
}

func TestConcurrentWritersOneWinsEachRound(t *testing.T) {
	s := startStore(t, nil, eventstore.Config{})
	ctx := ctxT(t)
	const writers, rounds = 8, 10
	for round := range rounds {
		var wg sync.WaitGroup
		errs := make([]error, writers)
		start := make(chan struct{})
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[w] = s.Append(ctx, "race-1", int64(round), ev("race.step", w))
			}()
		}
		close(start)
		wg.Wait()
		wins := 0
		for _, err := range errs {
			var ce *eventstore.ConflictError
			switch {
			case err == nil:
				wins++
			case errors.As(err, &ce):
				if ce.Current != int64(round+1) {
					t.Fatalf("round %d: conflict reports version %d, want %d", round, ce.Current, round+1)
				}
			default:
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d winners", round, wins)
		}
	}
	got, _ := s.ReadStream(ctx, "race-1", 1, 100)
	if len(got) != rounds {
		t.Fatalf("%d events stored, want %d", len(got), rounds)
	}
	for i, e := range got {
		if e.Version != int64(i+1) || (i > 0 && e.Position <= got[i-1].Position) {
			t.Fatalf("event %d: version %d position %d", i, e.Version, e.Position)
		}
	}
}

func TestReadAllFiltersAndPaging(t *testing.T) {
	s := startStore(t, nil, eventstore.Config{})
	ctx := ctxT(t)
	var want, logins, paid []uint64 // positions, as the appends said
	for i := range 10 {
		r := mustAppend(t, s, fmt.Sprintf("user-%d", i%3), eventstore.AnyVersion, ev("user.login", i))
		want, logins = append(want, r.Position), append(logins, r.Position)
		r = mustAppend(t, s, fmt.Sprintf("order-%d", i%2), eventstore.AnyVersion, ev("order.placed", i), ev("order.paid", i))
		want, paid = append(want, r.FirstPosition, r.Position), append(paid, r.Position)
	}
	mid := time.Now()
	time.Sleep(5 * time.Millisecond)
	late := mustAppend(t, s, "user-9", eventstore.AnyVersion, ev("user.logout", "late"))
	want = append(want, late.Position)

	var all []eventstore.Envelope
	next := uint64(0)
	for {
		p, err := s.ReadAll(ctx, eventstore.Query{FromPosition: next, Limit: 7})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, p.Events...)
		if len(p.Events) == 0 {
			break
		}
		next = p.NextPosition
	}
	if len(all) != 31 {
		t.Fatalf("paged read-all gave %d events, want 31", len(all))
	}
	for i, e := range all {
		if e.Position != want[i] {
			t.Fatalf("event %d has position %d, want %d", i, e.Position, want[i])
		}
	}
	byCat, _ := s.ReadAll(ctx, eventstore.Query{Category: "user", Limit: 100})
	if len(byCat.Events) != 11 || byCat.NextPosition != late.Position+1 {
		t.Fatalf("category user: %d events, next %d", len(byCat.Events), byCat.NextPosition)
	}
	byTypes, _ := s.ReadAll(ctx, eventstore.Query{Types: []string{"order.paid", "user.logout"}, Limit: 100})
	if len(byTypes.Events) != 11 {
		t.Fatalf("types: %d events", len(byTypes.Events))
	}
	if !slices.IsSortedFunc(byTypes.Events, func(a, b eventstore.Envelope) int { return int(a.Position) - int(b.Position) }) {
		t.Fatal("types read not in global order")
	}
	both, _ := s.ReadAll(ctx, eventstore.Query{Types: []string{"order.paid"}, Category: "user"})
	if len(both.Events) != 0 {
		t.Fatalf("order.paid in category user: %d", len(both.Events))
	}
	since, _ := s.ReadAll(ctx, eventstore.Query{Since: mid})
	if len(since.Events) != 1 || since.Events[0].Type != "user.logout" {
		t.Fatalf("since: %+v", since.Events)
	}
	limited, _ := s.ReadAll(ctx, eventstore.Query{Types: []string{"order.paid", "user.login"}, Limit: 3})
	if len(limited.Events) != 3 || limited.Events[1].Position != paid[0] || limited.Events[2].Position != logins[1] ||
		limited.NextPosition != logins[1]+1 {
		t.Fatalf("merged types limit 3: %+v next %d", limited.Events, limited.NextPosition)
	}
}

func TestWriterIDDeduplicatesRetries(t *testing.T) {
	s := startStore(t, nil, eventstore.Config{})
	ctx := ctxT(t)
	e := eventstore.Event{Type: "pay.captured", ID: "pay-77-capture", Data: []byte(`1`)}
	first := mustAppend(t, s, "pay-77", eventstore.AnyVersion, e)
	mustAppend(t, s, "pay-78", eventstore.AnyVersion, ev("pay.captured", 2))
	again, err := s.Append(ctx, "pay-77", eventstore.AnyVersion, e)
	if err != nil || !again.Duplicate || again.Position != first.Position || again.Version != first.Version {
		t.Fatalf("retry: %+v %v (first %+v)", again, err, first)
	}
	if v, _, _ := s.Version(ctx, "pay-77"); v != 1 {
		t.Fatalf("retry stored a second event: version %d", v)
	}
	if _, err := s.Append(ctx, "pay-78", eventstore.AnyVersion, e); !errors.Is(err, eventstore.ErrInvalid) {
		t.Fatalf("id reused in another stream: %v", err)
	}
	_, err = s.Append(ctx, "pay-79", eventstore.NoStream, eventstore.Event{Type: "a.c", ID: "pay-77-capture"}, ev("a.b", 1))
	if !errors.Is(err, eventstore.ErrInvalid) {
		t.Fatalf("batch whose first id is stored in another stream: %v", err)
	}
	if v, _, err := s.Version(ctx, "pay-79"); err != nil || v != 0 {
		t.Fatalf("a refused batch stored events: version %d %v", v, err)
	}
	// A batch is deduplicated by its first event's id: a retried command
	// stores nothing new and answers with what the first try got.
	batch := []eventstore.Event{{Type: "pay.split", ID: "pay-80-split"}, ev("pay.part", 1), ev("pay.part", 2)}
	b1 := mustAppend(t, s, "pay-80", eventstore.NoStream, batch...)
	batch[1].ID = "" // a retry generates new ids for the others
	b2, err := s.Append(ctx, "pay-80", eventstore.AnyVersion, batch...)
	if err != nil || !b2.Duplicate || b2.Position != b1.Position || b2.FirstPosition != b1.FirstPosition ||
		b2.Version != 3 || !slices.Equal(b2.IDs, b1.IDs) {
		t.Fatalf("batch retry: %+v %v (first %+v)", b2, err, b1)
	}
	if v, _, _ := s.Version(ctx, "pay-80"); v != 3 {
		t.Fatalf("batch retry stored events: version %d", v)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	eng := enginetest.Start(t)
	a := startStore(t, eng, eventstore.Config{Metrics: reg})
	b := startStore(t, eng, eventstore.Config{Metrics: reg}) // shares the series
	mustAppend(t, a, "m-1", 0, ev("m.x", 1), ev("m.y", 2))
	_, _ = b.Append(ctxT(t), "m-1", 0, ev("m.x", 1))
	_, _ = b.Append(ctxT(t), "m-1", 0, eventstore.Event{Type: ""})
	want := map[string]float64{
		`plexus_events_appends_total{result="ok"}`:       1,
		`plexus_events_appends_total{result="conflict"}`: 1,
		`plexus_events_appends_total{result="invalid"}`:  1,
		`plexus_events_appended_total`:                   2,
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += fmt.Sprintf(`{%s="%s"}`, l.GetName(), l.GetValue())
			}
			if m.GetCounter() != nil {
				got[name] = m.GetCounter().GetValue()
			}
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}
