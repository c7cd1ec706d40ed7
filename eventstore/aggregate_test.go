package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/plexushq/plexus/eventstore"
)

type account struct {
	Balance int            `json:"balance"`
	Ops     int            `json:"ops"`
	ByKind  map[string]int `json:"byKind"`
	Closed  bool           `json:"closed"`
}

func applyAccount(a account, e eventstore.Envelope) (account, error) {
	var amount int
	if err := e.Decode(&amount); err != nil {
		return a, err
	}
	if a.ByKind == nil {
		a.ByKind = map[string]int{}
	}
	switch e.Type {
	case "acct.deposited":
		a.Balance += amount
	case "acct.withdrawn":
		if amount > a.Balance {
			return a, errors.New("insufficient funds")
		}
		a.Balance -= amount
	case "acct.closed":
		a.Closed = true
	default:
		return a, fmt.Errorf("unknown event %q", e.Type)
	}
	a.Ops++
	a.ByKind[e.Type]++
	return a, nil
}

func TestRepositorySnapshotsGiveTheSameStateAsReplay(t *testing.T) {
	s := startStore(t, nil, eventstore.Config{})
	ctx := ctxT(t)
	repo := eventstore.NewRepository(s, applyAccount, eventstore.RepositoryConfig{SnapshotEvery: 10})
	for i := range 47 {
		a, err := repo.Load(ctx, "acct-1")
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Raise("acct.deposited", i+1); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			if err := a.Raise("acct.withdrawn", 1); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := repo.Save(ctx, a); err != nil {
			t.Fatal(err)
		}
		mustAppend(t, s, "noise-1", eventstore.AnyVersion, ev("noise.made", i)) // interleave other streams
	}
	snap, err := s.LoadSnapshot(ctx, "acct-1")
	if err != nil || snap.Version < 50 || snap.Version > 63 || snap.Position == 0 {
		t.Fatalf("snapshot: %+v %v", snap, err)
	}
	loaded, err := repo.Load(ctx, "acct-1")
	if err != nil {
		t.Fatal(err)
	}
	// A full replay without snapshots.
	var replay account
	events, err := s.ReadStream(ctx, "acct-1", 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if replay, err = applyAccount(replay, e); err != nil {
			t.Fatal(err)
		}
	}
	if !reflect.DeepEqual(loaded.State, replay) || loaded.Version != int64(len(events)) || loaded.Version != 63 {
		t.Fatalf("snapshot+events %+v (v%d) != replay %+v (v%d)", loaded.State, loaded.Version, replay, len(events))
	}
	if replay.Balance != 47*48/2-16 {
		t.Fatalf("balance %d", replay.Balance)
	}
	// A repository that never snapshots loads the same state.
	noSnap := eventstore.NewRepository(s, applyAccount, eventstore.RepositoryConfig{SnapshotEvery: -1})
	full, err := noSnap.Load(ctx, "acct-1")
	if err != nil || !reflect.DeepEqual(full.State, replay) {
		t.Fatalf("second repository: %+v %v", full, err)
	}
}

func TestRepositoryOptimisticConcurrency(t *testing.T) {
	s := startStore(t, nil, eventstore.Config{})
	ctx := ctxT(t)
	repo := eventstore.NewRepository(s, applyAccount, eventstore.RepositoryConfig{})
	a := repo.New("acct-2")
	_ = a.Raise("acct.deposited", 10)
	if _, err := repo.Save(ctx, a); err != nil {
		t.Fatal(err)
	}
	x, _ := repo.Load(ctx, "acct-2")
	y, _ := repo.Load(ctx, "acct-2")
	_ = x.Raise("acct.withdrawn", 10)
	_ = y.Raise("acct.withdrawn", 10)
	if _, err := repo.Save(ctx, x); err != nil {
		t.Fatal(err)
	}
	_, err := repo.Save(ctx, y)
	var ce *eventstore.ConflictError
	if !errors.As(err, &ce) || ce.Current != 2 {
		t.Fatalf("second writer: %v", err)
	}
	// A refused event changes nothing.
	z, _ := repo.Load(ctx, "acct-2")
	if err := z.Raise("acct.withdrawn", 1); err == nil || z.Version != 2 || len(z.Pending()) != 0 {
		t.Fatalf("overdraft raised: %v %+v", err, z)
	}
	if fresh, _ := repo.Load(ctx, "acct-none"); fresh.Exists() {
		t.Fatal("an id without events exists")
	}
}

func TestMiddlewaresEnrichAndReject(t *testing.T) {
	s := startStore(t, nil, eventstore.Config{Middlewares: []eventstore.Middleware{
		func(_ context.Context, stream string, e *eventstore.Event) error {
			e.Metadata = []byte(`{"tenant":"acme","stream":"` + stream + `"}`)
			return nil
		},
	}})
	s.Use(func(_ context.Context, _ string, e *eventstore.Event) error {
		if strings.HasPrefix(e.Type, "forbidden.") {
			return errors.New("forbidden events are not allowed")
		}
		return nil
	})
	ctx := ctxT(t)
	mustAppend(t, s, "doc-1", 0, ev("doc.created", 1))
	got, _ := s.ReadStream(ctx, "doc-1", 1, 1)
	if string(got[0].Metadata) != `{"tenant":"acme","stream":"doc-1"}` {
		t.Fatalf("enriched metadata: %s", got[0].Metadata)
	}
	_, err := s.Append(ctx, "doc-1", 1, ev("doc.edited", 2), ev("forbidden.thing", 3))
	if !errors.Is(err, eventstore.ErrRejected) {
		t.Fatalf("rejection: %v", err)
	}
	if v, _, _ := s.Version(ctx, "doc-1"); v != 1 {
		t.Fatalf("a rejected batch stored events: version %d", v)
	}
}

func TestTraceContextAndCausationReachHandlers(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := trace.NewTracerProvider(trace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	s := startStore(t, nil, eventstore.Config{TracerProvider: tp})
	ctx, span := tp.Tracer("test").Start(ctxT(t), "command")
	want := span.SpanContext().TraceID()
	res := mustAppendCtx(t, ctx, s, "trip-1", 0, eventstore.Event{Type: "trip.booked", CorrelationID: "corr-9"})
	span.End()
	got := make(chan eventstore.Envelope, 4)
	traces := make(chan bool, 4)
	subscribe(t, s, "reactor", func(hctx context.Context, e eventstore.Envelope) error {
		if e.Type == "trip.booked" {
			traces <- traceIDOf(hctx) == want.String()
			// An event appended by the handler is correlated and caused by e.
			_, err := s.Append(hctx, "invoice-1", eventstore.AnyVersion, eventstore.Event{Type: "invoice.issued"})
			return err
		}
		got <- e
		return nil
	}, eventstore.SubscribeOptions{})
	if !<-traces {
		t.Fatal("handler ctx lacks the append's trace")
	}
	select {
	case e := <-got:
		if e.CorrelationID != "corr-9" || e.CausationID != res.IDs[0] {
			t.Fatalf("follow-up event: correlation %q causation %q, want corr-9 and %q", e.CorrelationID, e.CausationID, res.IDs[0])
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no follow-up event")
	}
	var appendSpans int
	for _, sp := range rec.Ended() {
		if sp.Name() == "eventstore.append" && sp.SpanContext().TraceID() == want {
			appendSpans++
		}
	}
	if appendSpans < 2 {
		t.Fatalf("%d append spans in the trace, want 2", appendSpans)
	}
}

func TestProjectionBuildsReadModel(t *testing.T) {
	s := startStore(t, nil, eventstore.Config{})
	ctx := ctxT(t)
	mustAppend(t, s, "acct-1", 0, ev("acct.deposited", 5), ev("acct.deposited", 7))
	mustAppend(t, s, "other-1", 0, ev("other.x", 1))
	p := eventstore.NewProjection(s, map[string]int{}, func(m *map[string]int, e eventstore.Envelope) error {
		var n int
		if err := e.Decode(&n); err != nil {
			return err
		}
		(*m)[e.Stream] += n
		return nil
	}, eventstore.ProjectionOptions{Category: "acct"})
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Stop(context.Background()) }()
	r := mustAppend(t, s, "acct-2", 0, ev("acct.deposited", 3))
	if err := p.WaitFor(ctx, r.Position); err != nil {
		t.Fatal(err)
	}
	p.Read(func(m *map[string]int) {
		if (*m)["acct-1"] != 12 || (*m)["acct-2"] != 3 || len(*m) != 2 {
			t.Fatalf("read model %v", *m)
		}
	})
	if p.Position() != r.Position {
		t.Fatalf("position %d, want %d", p.Position(), r.Position)
	}
}
