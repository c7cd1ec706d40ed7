// Package notify is the notification-service example: it long-polls the
// "notifications" queue over the node's queue HTTP API, "sends" each
// notification (a log line), acknowledges it, and counts what it sent
// (GET /sent).
package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/plexushq/plexus/examples/internal/app"
	"github.com/plexushq/plexus/examples/internal/orders"
	"github.com/plexushq/plexus/queue"
	"github.com/plexushq/plexus/service"
)

// Name is the service's registered name.
const Name = "notification-service"

// Sent is the answer of GET /sent.
type Sent struct {
	Sent       int      `json:"sent"`
	Duplicates int      `json:"duplicates"`
	Last       []string `json:"last"`
}

type notifier struct {
	q        *queue.Client
	log      *slog.Logger
	consumer string

	mu   sync.Mutex
	seen map[string]bool
	sent Sent
}

// Run consumes the queue and serves GET /sent until ctx ends or
// SIGTERM/SIGINT arrives; the consumer stops with the server's drain.
func Run(ctx context.Context, cfg app.Config) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	sc, err := cfg.Service(Name)
	if err != nil {
		return err
	}
	q, err := cfg.Queues(nil)
	if err != nil {
		return err
	}
	if err := app.EnsureQueue(ctx, q, orders.Queue, queue.Config{}); err != nil {
		return err
	}
	s, err := service.New(ctx, sc)
	if err != nil {
		return err
	}
	n := &notifier{q: q, log: s.Config().Logger, consumer: s.Config().ID, seen: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /sent", n.handleSent)

	cctx, stopConsumer := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.consume(cctx)
	}()
	err = s.Run(ctx, app.Tag(s.Config().ID, mux))
	stopConsumer()
	<-done
	return err
}

func (n *notifier) handleSent(w http.ResponseWriter, _ *http.Request) {
	n.mu.Lock()
	out := n.sent
	out.Last = append([]string(nil), n.sent.Last...)
	n.mu.Unlock()
	app.WriteJSON(w, http.StatusOK, out)
}

// consume long-polls until ctx ends. A message is acknowledged after it
// was handled (at least once); one that cannot be decoded is nacked, and
// after the queue's retry attempts it lands in notifications.dlq.
func (n *notifier) consume(ctx context.Context) {
	n.q.Consume(ctx, orders.Queue, n.handle, queue.ConsumeOptions{Consumer: n.consumer, Logger: n.log})
}

func (n *notifier) handle(_ context.Context, m *queue.Delivery) error {
	var note orders.Notification
	if err := json.Unmarshal(m.Payload, &note); err != nil || note.Type == "" {
		n.log.Warn("bad notification", "id", m.ID, "err", err)
		return fmt.Errorf("undecodable payload: %v", err)
	}
	n.mu.Lock()
	dup := n.seen[m.ID]
	n.seen[m.ID] = true
	if dup {
		n.sent.Duplicates++
	} else {
		n.sent.Sent++
		n.sent.Last = append(n.sent.Last, m.ID)
		if len(n.sent.Last) > 10 {
			n.sent.Last = n.sent.Last[1:]
		}
	}
	n.mu.Unlock()
	if !dup {
		n.log.Info("notification sent", "id", m.ID, "type", note.Type, "order", note.Order.ID,
			"user", note.Order.UserID, "to", note.Email, "attempt", m.Attempts)
	}
	return nil
}
