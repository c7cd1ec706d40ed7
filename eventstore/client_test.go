package eventstore_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/plexushq/plexus/eventstore"
)

func TestClientOverHTTP(t *testing.T) {
	a := startAPI(t, eventstore.APIConfig{Heartbeat: 100 * time.Millisecond})
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := eventstore.NewClient(a.url, "", &http.Client{Transport: tr})
	ctx := ctxT(t)
	res, err := c.Append(ctx, "note-1", eventstore.NoStream, ev("note.written", "a"), ev("note.written", "b"))
	second := res.Position
	if err != nil || res.Version != 2 || res.Position == 0 {
		t.Fatalf("append: %+v %v", res, err)
	}
	_, err = c.Append(ctx, "note-1", 1, ev("note.written", "c"))
	var ce *eventstore.ConflictError
	if !errors.As(err, &ce) || ce.Current != 2 || ce.Stream != "note-1" {
		t.Fatalf("conflict: %v", err)
	}
	if _, err := c.ReadStream(ctx, "note-404", 1, 10); !errors.Is(err, eventstore.ErrStreamNotFound) {
		t.Fatalf("unknown stream: %v", err)
	}
	if _, err := c.Append(ctx, "note-1", eventstore.AnyVersion, eventstore.Event{Type: "bad type"}); !errors.Is(err, eventstore.ErrInvalid) {
		t.Fatalf("bad type: %v", err)
	}
	evs, err := c.ReadStreamBackward(ctx, "note-1", 0, 10)
	if err != nil || len(evs) != 2 || evs[0].Version != 2 {
		t.Fatalf("backward: %+v %v", evs, err)
	}
	page, err := c.ReadAll(ctx, eventstore.Query{Types: []string{"note.written"}, Limit: 1})
	if err != nil || len(page.Events) != 1 || page.NextPosition != page.Events[0].Position+1 || page.Events[0].Version != 1 {
		t.Fatalf("read all: %+v %v", page, err)
	}
	if err := c.SaveSnapshot(ctx, "note-1", eventstore.Snapshot{Version: 2, State: []byte(`"ab"`)}); err != nil {
		t.Fatal(err)
	}
	if snap, err := c.LoadSnapshot(ctx, "note-1"); err != nil || string(snap.State) != `"ab"` {
		t.Fatalf("snapshot: %+v %v", snap, err)
	}

	if gs, err := c.Groups(ctx); err != nil || len(gs) != 0 {
		t.Fatalf("groups: %v %v", gs, err)
	}
	if p, err := c.Parked(ctx, "nobody"); err != nil || len(p) != 0 {
		t.Fatalf("parked: %v %v", p, err)
	}
	if err := c.RetryParked(ctx, "nobody", 1); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("retry unknown: %v", err)
	}
	if err := c.SkipParked(ctx, "nobody", 1); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("skip unknown: %v", err)
	}

	// Tail: catch up, then live, then fn's error ends it.
	got := make(chan eventstore.Envelope, 10)
	stop := errors.New("enough")
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- c.Tail(tctx, eventstore.Query{FromPosition: second}, func(e eventstore.Envelope) error {
			got <- e
			if e.Stream == "note-2" {
				return stop
			}
			return nil
		})
	}()
	if e := <-got; e.Position != second || e.Version != 2 {
		t.Fatalf("tail first: %+v", e)
	}
	live, err := c.Append(ctx, "note-2", eventstore.NoStream, ev("note.written", "live"))
	if err != nil {
		t.Fatal(err)
	}
	if e := <-got; e.Position != live.Position || e.Stream != "note-2" {
		t.Fatalf("tail live: %+v", e)
	}
	if err := <-done; !errors.Is(err, stop) {
		t.Fatalf("tail ended with %v", err)
	}
}
