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
	"github.com/plexushq/plexus/queue"
	"github.com/plexushq/plexus/service"
)

// QueueOptions: a failed step is retried quickly and often before it is
// dead-lettered (order-saga.dlq).
var QueueOptions = queue.Config{RetryAttempts: 10, RetryDelay: new(200 * time.Millisecond), RetryBackoff: queue.BackoffExponential}

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
	q, err := cfg.Queues(nil)
	if err != nil {
		return err
	}
	if err := app.EnsureQueue(ctx, q, Queue, QueueOptions); err != nil {
		return err
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
		q.Consume(wctx, Queue, func(ctx context.Context, m *queue.Delivery) error { return sg.deliver(ctx, log, m) },
			queue.ConsumeOptions{Consumer: id, Logger: log, HandlerTimeout: 20 * time.Second})
	}()
	err = s.Run(ctx, app.Tag(id, sg.handler()))
	stopWorker()
	<-done
	return err
}

// deliver runs one message's step; an error nacks it, so that the queue
// redelivers it after the retry delay.
func (s *Saga) deliver(hctx context.Context, log *slog.Logger, m *queue.Delivery) error {
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
		return err
	}
	log.Info("saga step done", "step", c.Step, "order", c.OrderID, "attempt", m.Attempts)
	return nil
}
