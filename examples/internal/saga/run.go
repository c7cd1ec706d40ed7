package saga

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/plexushq/plexus/eventstore"
	"github.com/plexushq/plexus/examples/internal/app"
	"github.com/plexushq/plexus/examples/internal/qhttp"
	"github.com/plexushq/plexus/service"
)

// QueueOptions: a failed step is retried quickly and often before it is
// dead-lettered (order-saga.dlq).
var QueueOptions = qhttp.Options{RetryAttempts: 10, RetryDelay: "200ms", RetryBackoff: "exponential"}

// Run serves the saga's HTTP API and handles its steps until ctx ends or
// SIGTERM/SIGINT arrives.
func Run(ctx context.Context, cfg app.Config) error { return RunWith(ctx, cfg, nil) }

// RunWith is Run with the event store client wrapped by wrap (nil: as is);
// the tests wrap it to inject faults.
func RunWith(ctx context.Context, cfg app.Config, wrap func(Events) Events) error {
	sc, err := cfg.Service(Name)
	if err != nil {
		return err
	}
	q := qhttp.New(cfg.AdminURL, cfg.Token, nil)
	ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = q.EnsureWith(ectx, Queue, QueueOptions)
	cancel()
	if err != nil {
		return fmt.Errorf("queue %s: %w", Queue, err)
	}
	var ev Events = eventstore.NewClient(cfg.AdminURL, cfg.Token, &http.Client{Timeout: 15 * time.Second})
	if wrap != nil {
		ev = wrap(ev)
	}
	s, err := service.New(ctx, sc)
	if err != nil {
		return err
	}
	sg := New(ev, q)
	log, id := s.Config().Logger, s.Config().ID
	// The worker stops when the server has drained (Run returns), so a
	// step in progress finishes or is nacked.
	wctx, stopWorker := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		q.Consume(wctx, log, Queue, id, func(m qhttp.Delivery) { sg.deliver(wctx, log, q, m) })
	}()
	err = s.Run(ctx, app.Tag(id, sg.handler()))
	stopWorker()
	<-done
	return err
}

// deliver runs one message's step and acks it, or nacks it with the
// error so that the queue redelivers it after the retry delay.
func (s *Saga) deliver(ctx context.Context, log *slog.Logger, q *qhttp.Client, m qhttp.Delivery) {
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
	defer cancel()
	var c Command
	err := json.Unmarshal(m.Payload, &c)
	if err == nil && (!validID(c.OrderID) || c.Step == "") {
		err = fmt.Errorf("command %q of order %q: invalid", c.Step, c.OrderID)
	}
	if err == nil {
		err = s.Handle(hctx, c)
	}
	if err != nil {
		log.Warn("saga step failed; retried after the queue's delay", "id", m.ID, "attempt", m.Attempts, "err", err)
		if nerr := q.Nack(hctx, Queue, m.Receipt, err.Error()); nerr != nil {
			log.Warn("nack failed (redelivered after the visibility timeout)", "id", m.ID, "err", nerr)
		}
		return
	}
	log.Info("saga step done", "step", c.Step, "order", c.OrderID, "attempt", m.Attempts)
	if err := q.Ack(hctx, Queue, m.Receipt); err != nil {
		log.Warn("ack failed (the step will be redelivered, and changes nothing)", "id", m.ID, "err", err)
	}
}
