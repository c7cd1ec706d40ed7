package eventstore_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/plexushq/plexus/eventstore"
	"github.com/plexushq/plexus/internal/enginetest"
)

// format1 is testdata/format1/expected.json: what the store of main at
// 7359536 read back from the data dir next to it (testdata/format1/data).
type format1 struct {
	Events      []eventstore.Envelope    `json:"events"`
	TraceID     string                   `json:"traceId"`
	TracedEvent uint64                   `json:"tracedEvent"`
	Checkpoint  uint64                   `json:"checkpoint"`
	Parked      []eventstore.ParkedEvent `json:"parked"`
	Snapshot    eventstore.Snapshot      `json:"snapshot"`
}

// openFormat1 copies the first-format data dir and starts a store on it.
func openFormat1(t *testing.T) (*eventstore.Store, format1, string) {
	t.Helper()
	var want format1
	b, err := os.ReadFile("testdata/format1/expected.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.CopyFS(dir, os.DirFS("testdata/format1/data")); err != nil {
		t.Fatal(err)
	}
	return startStore(t, enginetest.Start(t, dir), eventstore.Config{}), want, dir
}

// sameEnvelope compares envelopes field by field, data and metadata as JSON.
func sameEnvelope(a, b eventstore.Envelope) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	var va, vb any
	_ = json.Unmarshal(ja, &va)
	_ = json.Unmarshal(jb, &vb)
	ca, _ := json.Marshal(va)
	cb, _ := json.Marshal(vb)
	return string(ca) == string(cb)
}

// TestReadsDataWrittenInFormat1 opens a data dir written by the store
// before the second format and finds every event, checkpoint, parked
// event and snapshot where it was; new appends continue the old streams
// after them, in one global order.
func TestReadsDataWrittenInFormat1(t *testing.T) {
	s, want, _ := openFormat1(t)
	ctx := ctxT(t)
	page, err := s.ReadAll(ctx, eventstore.Query{Limit: eventstore.MaxReadLimit})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != len(want.Events) {
		t.Fatalf("read %d events, want %d", len(page.Events), len(want.Events))
	}
	for i, e := range page.Events {
		if !sameEnvelope(e, want.Events[i]) {
			t.Fatalf("event %d:\n got %+v\nwant %+v", i, e, want.Events[i])
		}
	}
	// Per stream, forwards and backwards, and each stream's version.
	for _, stream := range []string{"user-1", "order-7", "user-2", "mail"} {
		var exp []eventstore.Envelope
		for _, e := range want.Events {
			if e.Stream == stream {
				exp = append(exp, e)
			}
		}
		got, err := s.ReadStream(ctx, stream, 1, 0)
		if err != nil || len(got) != len(exp) {
			t.Fatalf("%s: %d events, %v; want %d", stream, len(got), err, len(exp))
		}
		for i := range got {
			if !sameEnvelope(got[i], exp[i]) {
				t.Fatalf("%s event %d: %+v, want %+v", stream, i, got[i], exp[i])
			}
		}
		back, err := s.ReadStreamBackward(ctx, stream, 0, 2)
		if err != nil || len(back) != min(2, len(exp)) || back[0].Position != exp[len(exp)-1].Position {
			t.Fatalf("%s backwards: %+v %v", stream, back, err)
		}
		v, pos, err := s.Version(ctx, stream)
		if err != nil || v != exp[len(exp)-1].Version || pos != exp[len(exp)-1].Position {
			t.Fatalf("%s version %d at %d, %v", stream, v, pos, err)
		}
	}
	// A category and type filter, and paging from an old position.
	users, err := s.ReadAll(ctx, eventstore.Query{Category: "user", Types: []string{"user.renamed"}, FromPosition: 3})
	if err != nil || len(users.Events) != 2 || users.Events[0].Position != 9 || users.NextPosition != 11 {
		t.Fatalf("filtered read: %+v %v", users, err)
	}
	snap, err := s.LoadSnapshot(ctx, "user-1")
	if err != nil || snap.Version != want.Snapshot.Version || snap.Position != want.Snapshot.Position {
		t.Fatalf("snapshot: %+v %v", snap, err)
	}
	after, err := s.ReadStreamAfter(ctx, "user-1", snap.Version+1, snap.Position, 0)
	if err != nil || len(after) != 1 || after[0].Type != "user.deleted" {
		t.Fatalf("events after the snapshot: %+v %v", after, err)
	}
	parked, err := s.Parked(ctx, "mailer", 0)
	if err != nil || len(parked) != 1 || parked[0].Position != want.Parked[0].Position || parked[0].ID != want.Parked[0].ID {
		t.Fatalf("parked: %+v %v", parked, err)
	}

	// New appends continue the old streams, after every old position.
	last := want.Events[len(want.Events)-1].Position
	r1 := mustAppend(t, s, "user-1", 3, ev("user.restored", 1))
	r2 := mustAppend(t, s, "order-7", 3, ev("order.returned", 1), ev("order.refunded", 2))
	if r1.Version != 4 || r1.Position <= last || r2.Version != 5 || r2.FirstPosition <= r1.Position {
		t.Fatalf("appends after the old events: %+v %+v (last old position %d)", r1, r2, last)
	}
	if _, err := s.Append(ctx, "user-2", 2, ev("user.renamed", 3)); err == nil {
		t.Fatal("an old stream's version was not checked")
	}
	all, err := s.ReadAll(ctx, eventstore.Query{FromPosition: 9})
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for _, e := range all.Events {
		got = append(got, e.Position)
	}
	if exp := []uint64{9, 10, r1.Position, r2.FirstPosition, r2.Position}; !slices.Equal(got, exp) {
		t.Fatalf("read across the formats: %v, want %v", got, exp)
	}
	between, err := s.ReadAll(ctx, eventstore.Query{FromPosition: last + 1})
	if err != nil || len(between.Events) != 3 || between.Events[0].Position != r1.Position {
		t.Fatalf("read from just after the old events: %+v %v", between, err)
	}
	order, err := s.ReadStream(ctx, "order-7", 2, 0)
	if err != nil || len(order) != 4 || order[1].Version != 3 || order[2].Version != 4 || order[3].Type != "order.refunded" {
		t.Fatalf("order-7 across the formats: %+v %v", order, err)
	}
}

// TestFormat1GroupsContinueFromTheirCheckpoint: a group that checkpointed
// old events continues after them; parked old events can be retried; an
// old event's trace context reaches a handler.
func TestFormat1GroupsContinueFromTheirCheckpoint(t *testing.T) {
	s, want, _ := openFormat1(t)
	fresh := mustAppend(t, s, "user-3", 0, ev("user.created", 3))
	billing := newRecorder()
	subscribe(t, s, "billing", billing.handle, eventstore.SubscribeOptions{})
	billing.waitLen(t, 3)
	time.Sleep(50 * time.Millisecond) // room for a stray duplicate
	if got, exp := billing.positions(), []uint64{want.Checkpoint + 1, want.Checkpoint + 2, fresh.Position}; !slices.Equal(got, exp) {
		t.Fatalf("billing after its checkpoint %d: %v, want %v", want.Checkpoint, got, exp)
	}

	var mu sync.Mutex
	var handled []uint64
	subscribe(t, s, "mailer", func(_ context.Context, e eventstore.Envelope) error {
		mu.Lock()
		handled = append(handled, e.Position)
		mu.Unlock()
		return nil
	}, eventstore.SubscribeOptions{Types: []string{"mail.bad"}})
	if err := s.RetryParked(ctxT(t), "mailer", want.Parked[0].Position); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { p, _ := s.Parked(ctxT(t), "mailer", 0); return len(p) == 0 })
	mu.Lock()
	if !slices.Equal(handled, []uint64{want.Parked[0].Position}) {
		t.Fatalf("mailer handled %v", handled)
	}
	mu.Unlock()

	traced := make(chan string, 1)
	subscribe(t, s, "tracer", func(ctx context.Context, e eventstore.Envelope) error {
		if e.Position == want.TracedEvent {
			traced <- traceIDOf(ctx)
		}
		return nil
	}, eventstore.SubscribeOptions{FromPosition: want.TracedEvent})
	select {
	case id := <-traced:
		if id != want.TraceID {
			t.Fatalf("trace id %q, want %q", id, want.TraceID)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the traced event was not handled")
	}
}

// TestFormat1SurvivesRestarts: the format marker is written once; a
// restarted store finds it and the same positions.
func TestFormat1SurvivesRestarts(t *testing.T) {
	var want format1
	b, _ := os.ReadFile("testdata/format1/expected.json")
	_ = json.Unmarshal(b, &want)
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.CopyFS(dir, os.DirFS("testdata/format1/data")); err != nil {
		t.Fatal(err)
	}
	var first eventstore.AppendResult
	for round := range 2 {
		eng := enginetest.Start(t, dir)
		s := eventstore.New(eng, eventstore.Config{})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := s.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if round == 0 {
			first = mustAppend(t, s, "user-1", 3, ev("user.restored", 1))
		}
		page, err := s.ReadAll(ctx, eventstore.Query{Limit: eventstore.MaxReadLimit})
		if err != nil || len(page.Events) != len(want.Events)+1 || page.Events[len(want.Events)].Position != first.Position {
			t.Fatalf("round %d: %d events, %v", round, len(page.Events), err)
		}
		st, err := s.Stats(ctx)
		if err != nil || st.LastPosition != first.Position || st.Appends != uint64(len(want.Events))+1 {
			t.Fatalf("round %d: stats %+v %v", round, st, err)
		}
		_ = s.Stop(ctx)
		_ = eng.Stop(ctx)
		cancel()
	}
}
