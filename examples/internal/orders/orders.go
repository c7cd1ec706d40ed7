// Package orders is the order-service example: POST /orders checks the user
// with user-service through the service client (discovery, balancing,
// breakers, retries), keeps the order in memory and publishes an
// order.created message to the "notifications" queue over the node's
// queue HTTP API.
package orders

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/plexushq/plexus/client"
	"github.com/plexushq/plexus/examples/internal/app"
	"github.com/plexushq/plexus/examples/internal/users"
	"github.com/plexushq/plexus/queue"
	"github.com/plexushq/plexus/service"
)

// Name is the service's registered name; Queue the queue it publishes to.
const (
	Name  = "order-service"
	Queue = "notifications"
)

// Order is what the service stores.
type Order struct {
	ID        string    `json:"id"`
	UserID    string    `json:"userId"`
	Item      string    `json:"item"`
	Quantity  int       `json:"quantity"`
	CreatedAt time.Time `json:"createdAt"`
}

// Notification is the message published for each order.
type Notification struct {
	Type  string `json:"type"`
	Order Order  `json:"order"`
	Email string `json:"email"`
}

type orders struct {
	svc *service.Service
	q   *queue.Client
	mu  sync.RWMutex
	all map[string]Order
}

// Run serves the order service until ctx ends or SIGTERM/SIGINT arrives.
func Run(ctx context.Context, cfg app.Config) error {
	sc, err := cfg.Service(Name)
	if err != nil {
		return err
	}
	q, err := cfg.Queues(&http.Client{Timeout: 10 * time.Second})
	if err != nil {
		return err
	}
	if err := app.EnsureQueue(ctx, q, Queue, queue.Config{}); err != nil {
		return err
	}
	s, err := service.New(ctx, sc)
	if err != nil {
		return err
	}
	o := &orders{svc: s, q: q, all: map[string]Order{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders", o.create)
	mux.HandleFunc("GET /orders", o.list)
	mux.HandleFunc("GET /orders/{id}", o.get)
	return s.Run(ctx, app.Tag(s.Config().ID, mux))
}

func (o *orders) create(w http.ResponseWriter, r *http.Request) {
	var in struct {
		UserID   string `json:"userId"`
		Item     string `json:"item"`
		Quantity int    `json:"quantity"`
	}
	if err := app.ReadJSON(r, &in); err != nil {
		app.Problem(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	if in.UserID == "" || strings.TrimSpace(in.Item) == "" {
		app.Problem(w, http.StatusUnprocessableEntity, "userId and item are required")
		return
	}
	if in.Quantity <= 0 {
		in.Quantity = 1
	}
	var u users.User
	err := o.svc.Client().GetJSON(r.Context(), users.Name, "/users/"+url.PathEscape(in.UserID), &u)
	var se *client.StatusError
	switch {
	case errors.As(err, &se) && se.StatusCode == http.StatusNotFound:
		app.Problem(w, http.StatusUnprocessableEntity, "unknown user: "+in.UserID)
		return
	case err != nil:
		app.Problem(w, http.StatusBadGateway, "user-service: "+err.Error())
		return
	}
	ord := Order{ID: app.NewID(), UserID: u.ID, Item: in.Item, Quantity: in.Quantity, CreatedAt: time.Now().UTC()}
	// The message id is the order id: a retried publish is stored once.
	m, err := app.JSONMessage("order-"+ord.ID, Notification{Type: "order.created", Order: ord, Email: u.Email})
	if err == nil {
		_, err = o.q.Publish(r.Context(), Queue, m)
	}
	if err != nil {
		app.Problem(w, http.StatusServiceUnavailable, "queue: "+err.Error())
		return
	}
	o.mu.Lock()
	o.all[ord.ID] = ord
	o.mu.Unlock()
	w.Header().Set("Location", "/orders/"+ord.ID)
	app.WriteJSON(w, http.StatusCreated, ord)
}

func (o *orders) list(w http.ResponseWriter, _ *http.Request) {
	o.mu.RLock()
	out := make([]Order, 0, len(o.all))
	for _, v := range o.all {
		out = append(out, v)
	}
	o.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	app.WriteJSON(w, http.StatusOK, out)
}

func (o *orders) get(w http.ResponseWriter, r *http.Request) {
	o.mu.RLock()
	v, ok := o.all[r.PathValue("id")]
	o.mu.RUnlock()
	if !ok {
		app.Problem(w, http.StatusNotFound, "order not found on this instance: "+r.PathValue("id"))
		return
	}
	app.WriteJSON(w, http.StatusOK, v)
}
