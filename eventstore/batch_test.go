package eventstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/plexushq/plexus/eventstore"
)

// same is what two envelopes of the same logical event share whether they
// were appended alone or in a batch.
func same(a, b eventstore.Envelope) bool {
	return a.Type == b.Type && a.Version == b.Version && string(a.Data) == string(b.Data) &&
		string(a.Metadata) == string(b.Metadata) && a.Source == b.Source && a.CausationID == b.CausationID
}

func batchEvents(n int) []eventstore.Event {
	evs := make([]eventstore.Event, n)
	for i := range evs {
		typ := "acct.credited"
		if i%3 == 2 {
			typ = "acct.debited"
		}
		evs[i] = eventstore.Event{Type: typ, Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)), Source: "tests",
			Metadata: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)), CausationID: fmt.Sprintf("cmd-%d", i)}
	}
	return evs
}

// TestBatchedEventsReadLikeSingles appends the same events one at a time to
// one stream and in one append to another: every read sees them alike.
func TestBatchedEventsReadLikeSingles(t *testing.T) {
	s := startStore(t, nil, eventstore.Config{})
	ctx := ctxT(t)
	evs := batchEvents(10)
	for i, e := range evs {
		mustAppend(t, s, "acct-single", int64(i), e)
	}
	b := mustAppend(t, s, "acct-batch", eventstore.NoStream, evs...)
	if b.Version != 10 || b.Position != b.FirstPosition+9 || len(b.IDs) != 10 {
		t.Fatalf("batch: %+v", b)
	}
	single, err := s.ReadStream(ctx, "acct-single", 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := s.ReadStream(ctx, "acct-batch", 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range evs {
		if !same(single[i], batch[i]) || batch[i].Position != b.FirstPosition+uint64(i) || batch[i].ID != b.IDs[i] {
			t.Fatalf("event %d: single %+v batch %+v", i, single[i], batch[i])
		}
	}
	// From every version, forwards and backwards, and with a limit.
	for v := int64(1); v <= 10; v++ {
		got, err := s.ReadStream(ctx, "acct-batch", v, 3)
		if err != nil || len(got) != int(min(3, 11-v)) || got[0].Version != v {
			t.Fatalf("from version %d: %+v %v", v, got, err)
		}
		back, err := s.ReadStreamBackward(ctx, "acct-batch", v, 4)
		if err != nil || len(back) != int(min(4, v)) || back[0].Version != v || back[len(back)-1].Version != v-int64(len(back))+1 {
			t.Fatalf("backwards from version %d: %+v %v", v, back, err)
		}
		after, err := s.ReadStreamAfter(ctx, "acct-batch", v+1, batch[v-1].Position, 0)
		if err != nil || len(after) != int(10-v) || (len(after) > 0 && after[0].Version != v+1) {
			t.Fatalf("after version %d at %d: %+v %v", v, batch[v-1].Position, after, err)
		}
	}
	// Global reads: the batch's events by type, from a position inside
	// the batch, and in pages that end inside it.
	debits, err := s.ReadAll(ctx, eventstore.Query{Category: "acct", Types: []string{"acct.debited"}, FromPosition: b.FirstPosition})
	if err != nil || len(debits.Events) != 3 {
		t.Fatalf("debits in the batch: %+v %v", debits, err)
	}
	for i, e := range debits.Events {
		if e.Stream != "acct-batch" || e.Type != "acct.debited" || e.Version != int64(3*i+3) {
			t.Fatalf("debit %d: %+v", i, e)
		}
	}
	var paged []uint64
	for next := b.FirstPosition + 1; ; {
		p, err := s.ReadAll(ctx, eventstore.Query{FromPosition: next, Limit: 4})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Events) == 0 {
			break
		}
		for _, e := range p.Events {
			paged = append(paged, e.Position)
		}
		next = p.NextPosition
	}
	if len(paged) != 9 || paged[0] != b.FirstPosition+1 || paged[8] != b.Position {
		t.Fatalf("pages of 4 from inside the batch: %v", paged)
	}
	// A snapshot at a version inside the batch, with its position.
	if err := s.SaveSnapshot(ctx, "acct-batch", eventstore.Snapshot{Version: 4, Position: batch[3].Position, State: []byte(`4`)}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveSnapshot(ctx, "acct-batch", eventstore.Snapshot{Version: 5, Position: batch[3].Position, State: []byte(`5`)}); !errors.Is(err, eventstore.ErrInvalid) {
		t.Fatalf("snapshot with the wrong position: %v", err)
	}
	// A subscriber group and a tail see the batch one event at a time.
	rec := newRecorder()
	subscribe(t, s, "acct-debits", rec.handle, eventstore.SubscribeOptions{Types: []string{"acct.debited"}, Category: "acct"})
	rec.waitLen(t, 6)
	want := []uint64{single[2].Position, single[5].Position, single[8].Position, batch[2].Position, batch[5].Position, batch[8].Position}
	if got := rec.positions(); !slices.Equal(got, want) {
		t.Fatalf("debits handled %v, want %v", got, want)
	}
	var tailed []uint64
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	err = s.Tail(tctx, eventstore.Query{FromPosition: batch[7].Position}, func(e eventstore.Envelope) error {
		tailed = append(tailed, e.Position)
		if e.Position == b.Position {
			cancel()
		}
		return nil
	})
	if err != nil || !slices.Equal(tailed, []uint64{batch[7].Position, batch[8].Position, batch[9].Position}) {
		t.Fatalf("tail from inside the batch: %v %v", tailed, err)
	}
}

// TestConcurrentBatchWritersOneWinsEachRound: writers of single events and
// of batches race for each version; exactly one wins, all of its events
// or none are stored, and the losers learn the current version.
func TestConcurrentBatchWritersOneWinsEachRound(t *testing.T) {
	s := startStore(t, nil, eventstore.Config{})
	ctx := ctxT(t)
	const writers, rounds = 8, 10
	var version int64
	for round := range rounds {
		var wg sync.WaitGroup
		res := make([]eventstore.AppendResult, writers)
		errs := make([]error, writers)
		start := make(chan struct{})
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				evs := []eventstore.Event{ev("race.step", w)}
				if w%2 == 1 {
					evs = append(evs, ev("race.more", w), ev("race.more", w))
				}
				<-start
				res[w], errs[w] = s.Append(ctx, "race-2", version, evs...)
			}()
		}
		close(start)
		wg.Wait()
		winner := -1
		for w, err := range errs {
			if err == nil {
				if winner >= 0 {
					t.Fatalf("round %d: writers %d and %d both won", round, winner, w)
				}
				winner = w
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no winner: %v", round, errs)
		}
		version = res[winner].Version
		for w, err := range errs {
			var ce *eventstore.ConflictError
			if w != winner && (!errors.As(err, &ce) || ce.Current != version) {
				t.Fatalf("round %d writer %d: %v, want a conflict at %d", round, w, err, version)
			}
		}
	}
	got, err := s.ReadStream(ctx, "race-2", 1, 1000)
	if err != nil || int64(len(got)) != version {
		t.Fatalf("%d events stored, want %d: %v", len(got), version, err)
	}
	for i, e := range got {
		if e.Version != int64(i+1) || (i > 0 && e.Position <= got[i-1].Position) {
			t.Fatalf("event %d: version %d position %d", i, e.Version, e.Position)
		}
		// A batch is stored whole: its "more" events follow its step.
		if e.Type == "race.more" && got[i-1].Data[0] != e.Data[0] {
			t.Fatalf("event %d is not with its batch", i)
		}
	}
}

// TestBatchExpectedVersionAllOrNothing: a batch is checked against the
// expected version as a whole and stores nothing when refused.
func TestBatchExpectedVersionAllOrNothing(t *testing.T) {
	s := startStore(t, nil, eventstore.Config{})
	ctx := ctxT(t)
	mustAppend(t, s, "doc-1", eventstore.NoStream, batchEvents(3)...)
	var ce *eventstore.ConflictError
	if _, err := s.Append(ctx, "doc-1", eventstore.NoStream, batchEvents(2)...); !errors.As(err, &ce) || ce.Current != 3 {
		t.Fatalf("no-stream batch on a stream: %v", err)
	}
	if _, err := s.Append(ctx, "doc-1", 2, batchEvents(2)...); !errors.As(err, &ce) || ce.Current != 3 {
		t.Fatalf("stale batch: %v", err)
	}
	s.Use(func(_ context.Context, _ string, e *eventstore.Event) error {
		if e.Type == "acct.debited" {
			return errors.New("no debits today")
		}
		return nil
	})
	if _, err := s.Append(ctx, "doc-1", 3, batchEvents(3)...); !errors.Is(err, eventstore.ErrRejected) {
		t.Fatalf("a batch refused on its third event: %v", err)
	}
	if r, err := s.Append(ctx, "doc-1", 3, batchEvents(2)...); err != nil || r.Version != 5 {
		t.Fatalf("exact version: %+v %v", r, err)
	}
	got, _ := s.ReadStream(ctx, "doc-1", 1, 0)
	if len(got) != 5 {
		t.Fatalf("%d events stored, want 5", len(got))
	}
}
