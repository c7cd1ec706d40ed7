// Package users is the user-service example: users kept in memory, every
// creation appended as a user.created event to the node's event store over
// HTTP (stream user-<id>). An instance that does not hold a user (another
// replica created it) rebuilds it from its stream, so any replica answers
// GET /users/{id}.
package users

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/plexushq/plexus/eventstore"
	"github.com/plexushq/plexus/examples/internal/app"
	"github.com/plexushq/plexus/service"
)

// Name is the service's registered name.
const Name = "user-service"

// User is what the service stores.
type User struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Email     string    `json:"email"`
	CreatedAt time.Time `json:"createdAt"`
}

// StreamOf is the event stream of a user.
func StreamOf(id string) string { return "user-" + id }

type store struct {
	mu     sync.RWMutex
	users  map[string]User
	events *eventstore.Client
}

// Run serves the user service until ctx ends or SIGTERM/SIGINT arrives.
func Run(ctx context.Context, cfg app.Config) error {
	sc, err := cfg.Service(Name)
	if err != nil {
		return err
	}
	st := &store{users: map[string]User{}, events: eventstore.NewClient(cfg.AdminURL, cfg.Token, nil)}
	s, err := service.New(ctx, sc)
	if err != nil {
		return err
	}
	return s.Run(ctx, app.Tag(s.Config().ID, st.handler()))
}

func (st *store) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users", st.list)
	mux.HandleFunc("POST /users", st.create)
	mux.HandleFunc("GET /users/{id}", st.get)
	return mux
}

func (st *store) list(w http.ResponseWriter, _ *http.Request) {
	st.mu.RLock()
	out := make([]User, 0, len(st.users))
	for _, u := range st.users {
		out = append(out, u)
	}
	st.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	app.WriteJSON(w, http.StatusOK, out)
}

func (st *store) create(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Name  string `json:"name"`
		Email string `json:"email"`
	}
	if err := app.ReadJSON(r, &in); err != nil {
		app.Problem(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	if strings.TrimSpace(in.Name) == "" || !strings.Contains(in.Email, "@") {
		app.Problem(w, http.StatusUnprocessableEntity, "name and a valid email are required")
		return
	}
	u := User{ID: app.NewID(), Name: in.Name, Email: in.Email, CreatedAt: time.Now().UTC()}
	data, _ := json.Marshal(u)
	// The event first: a user exists once its creation is stored durably.
	if _, err := st.events.Append(r.Context(), StreamOf(u.ID), eventstore.NoStream,
		eventstore.Event{Type: "user.created", Data: data}); err != nil {
		app.Problem(w, http.StatusServiceUnavailable, "event store: "+err.Error())
		return
	}
	st.mu.Lock()
	st.users[u.ID] = u
	st.mu.Unlock()
	w.Header().Set("Location", "/users/"+u.ID)
	app.WriteJSON(w, http.StatusCreated, u)
}

func (st *store) get(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	st.mu.RLock()
	u, ok := st.users[id]
	st.mu.RUnlock()
	if !ok {
		var err error
		u, ok, err = st.load(r.Context(), id)
		if err != nil {
			app.Problem(w, http.StatusServiceUnavailable, "event store: "+err.Error())
			return
		}
	}
	if !ok {
		app.Problem(w, http.StatusNotFound, "user not found: "+id)
		return
	}
	app.WriteJSON(w, http.StatusOK, u)
}

// load rebuilds a user another replica created from its event stream.
func (st *store) load(ctx context.Context, id string) (User, bool, error) {
	if id == "" || len(id) > 64 || strings.ContainsAny(id, "/. *>") {
		return User{}, false, nil
	}
	evs, err := st.events.ReadStream(ctx, StreamOf(id), 1, 100)
	if errors.Is(err, eventstore.ErrStreamNotFound) || errors.Is(err, eventstore.ErrNotFound) || errors.Is(err, eventstore.ErrInvalid) {
		return User{}, false, nil
	}
	if err != nil {
		return User{}, false, err
	}
	var u User
	found := false
	for _, e := range evs {
		if e.Type == "user.created" && json.Unmarshal(e.Data, &u) == nil {
			found = true
		}
	}
	if found {
		st.mu.Lock()
		st.users[u.ID] = u
		st.mu.Unlock()
	}
	return u, found, nil
}
