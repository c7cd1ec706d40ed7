//go:build ignore

// This program wrote eventstore/testdata/format1: an engine data dir holding
// events in the first stored format (the envelope in NATS headers, one
// message per event, batches as engine atomic batches). It was run once
// from a checkout of main at 7359536 (before issue 16 changed the format):
//
//	git archive 7359536 | tar -x -C /tmp/main && cd /tmp/main
//	mkdir cmd/genfixture && cp .../generate.go cmd/genfixture/main.go
//	go run ./cmd/genfixture/main.go /path/to/eventstore/testdata/format1   (then rm data/plexus.lock)
//
// The test TestReadsDataWrittenInFormat1 opens a copy of that dir with
// today's code and checks every event against expected.json.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/eventstore"
)

type expected struct {
	Events      []eventstore.Envelope `json:"events"`
	TraceID     string                `json:"traceId"`
	TracedEvent uint64                `json:"tracedEvent"`
	// Checkpoint is the group "billing"'s checkpoint: every event up to it
	// was handled before the fixture was written.
	Checkpoint uint64                   `json:"checkpoint"`
	Parked     []eventstore.ParkedEvent `json:"parked"`
	Snapshot   eventstore.Snapshot      `json:"snapshot"`
}

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: genfixture DIR")
	}
	dir := os.Args[1]
	if err := run(dir); err != nil {
		log.Fatal(err)
	}
}

func run(dir string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	data := filepath.Join(dir, "data")
	eng, err := engine.Start(ctx, engine.Config{DataDir: data, Sync: "always",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	defer eng.Stop(context.Background())
	s := eventstore.New(eng, eventstore.Config{})
	if err := s.Start(ctx); err != nil {
		return err
	}
	var exp expected
	// A traced single append with every optional field.
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	tctx := trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
	exp.TraceID = tid.String()
	r, err := s.Append(tctx, "user-1", eventstore.NoStream, eventstore.Event{
		Type: "user.created", Data: json.RawMessage(`{"name":"ann","email":"ann@example.com"}`),
		Metadata: json.RawMessage(`{"ip":"10.0.0.1"}`), ID: "evt-user-1-created", CorrelationID: "corr-1",
		CausationID: "cmd-1", Source: "signup"})
	if err != nil {
		return err
	}
	exp.TracedEvent = r.Position
	steps := []struct {
		stream   string
		expected int64
		events   []eventstore.Event
	}{
		{"user-1", 1, []eventstore.Event{{Type: "user.renamed", Data: json.RawMessage(`{"name":"bea"}`)}}},
		{"order-7", eventstore.NoStream, []eventstore.Event{ // an engine atomic batch, mixed types
			{Type: "order.placed", Data: json.RawMessage(`{"total":12.5}`)},
			{Type: "order.paid", Data: json.RawMessage(`{"amount":12.5}`), Metadata: json.RawMessage(`{"psp":"x"}`)},
			{Type: "order.shipped"}}},
		{"user-2", eventstore.NoStream, []eventstore.Event{{Type: "user.created", Data: json.RawMessage(`"just a string"`)}}},
		{"mail", eventstore.AnyVersion, []eventstore.Event{{Type: "mail.bad", Data: json.RawMessage(`{"to":"nobody"}`)}}},
		{"user-1", 2, []eventstore.Event{{Type: "user.deleted", Data: json.RawMessage(`null`)}}},
	}
	for _, st := range steps {
		if _, err := s.Append(ctx, st.stream, st.expected, st.events...); err != nil {
			return fmt.Errorf("append %s: %w", st.stream, err)
		}
	}
	// Group "billing" handles everything so far; its checkpoint is the last.
	var seen atomic.Uint64
	done := make(chan struct{})
	billing, err := s.Subscribe(ctx, "billing", func(_ context.Context, e eventstore.Envelope) error {
		if seen.Add(1) == 8 {
			close(done)
		}
		return nil
	}, eventstore.SubscribeOptions{})
	if err != nil {
		return err
	}
	<-done
	if err := billing.Stop(ctx); err != nil {
		return err
	}
	exp.Checkpoint = billing.Position()
	// Group "mailer" parks the mail.bad event.
	parked := make(chan struct{})
	var parkedOnce atomic.Bool
	mailer, err := s.Subscribe(ctx, "mailer", func(_ context.Context, e eventstore.Envelope) error {
		if e.Type == "mail.bad" {
			if parkedOnce.CompareAndSwap(false, true) {
				go func() {
					for {
						if l, _ := s.Parked(ctx, "mailer", 0); len(l) == 1 {
							close(parked)
							return
						}
						time.Sleep(10 * time.Millisecond)
					}
				}()
			}
			return errors.New("smtp says no")
		}
		return nil
	}, eventstore.SubscribeOptions{MaxAttempts: 1, Types: []string{"mail.bad"}})
	if err != nil {
		return err
	}
	<-parked
	if err := mailer.Stop(ctx); err != nil {
		return err
	}
	if exp.Parked, err = s.Parked(ctx, "mailer", 0); err != nil {
		return err
	}
	// Events after billing's checkpoint.
	if _, err := s.Append(ctx, "user-2", 1, eventstore.Event{Type: "user.renamed", Data: json.RawMessage(`{"name":"cy"}`)},
		eventstore.Event{Type: "user.renamed", Data: json.RawMessage(`{"name":"di"}`)}); err != nil {
		return err
	}
	if err := s.SaveSnapshot(ctx, "user-1", eventstore.Snapshot{Version: 2, Position: 2, State: json.RawMessage(`{"name":"bea"}`)}); err != nil {
		return err
	}
	if exp.Snapshot, err = s.LoadSnapshot(ctx, "user-1"); err != nil {
		return err
	}
	page, err := s.ReadAll(ctx, eventstore.Query{Limit: eventstore.MaxReadLimit})
	if err != nil {
		return err
	}
	exp.Events = page.Events
	if err := s.Stop(ctx); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(exp, "", "  ")
	return os.WriteFile(filepath.Join(dir, "expected.json"), append(b, '\n'), 0o644)
}
