package saga

import (
	"net/http"

	"github.com/plexushq/plexus/eventstore"
	"github.com/plexushq/plexus/examples/internal/app"
	"github.com/plexushq/plexus/internal/names"
)

// maxIDLen bounds order, item and user ids (they end up in stream names).
const maxIDLen = 64

func validID(s string) bool { return len(s) <= maxIDLen && names.Valid(s) }

func (s *Saga) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders", s.placeOrder)
	mux.HandleFunc("GET /orders/{id}", s.getOrder)
	mux.HandleFunc("POST /stock/{sku}", s.addStock)
	mux.HandleFunc("GET /stock/{sku}", s.getStock)
	mux.HandleFunc("POST /accounts/{user}/credits", s.credit)
	mux.HandleFunc("GET /accounts/{user}", s.getAccount)
	return mux
}

// placeOrder queues the saga's first step and answers 202: the order is
// placed by whichever instance takes the message. A client that retries
// with the same id places one order.
func (s *Saga) placeOrder(w http.ResponseWriter, r *http.Request) {
	c, code, detail := DecodeOrder(r)
	if code != 0 {
		app.Problem(w, code, detail)
		return
	}
	st, err := s.LoadStock(r.Context(), c.SKU)
	if err != nil {
		app.Problem(w, http.StatusServiceUnavailable, "event store: "+err.Error())
		return
	}
	if st.Version == 0 {
		app.Problem(w, http.StatusUnprocessableEntity, "unknown item: "+c.SKU)
		return
	}
	m, err := app.JSONMessage(c.MessageID(), c)
	if err == nil {
		_, err = s.q.Publish(r.Context(), Queue, m)
	}
	if err != nil {
		app.Problem(w, http.StatusServiceUnavailable, "queue: "+err.Error())
		return
	}
	w.Header().Set("Location", "/orders/"+c.OrderID)
	app.WriteJSON(w, http.StatusAccepted, map[string]string{"id": c.OrderID, "status": "pending"})
}

// DecodeOrder reads a POST /orders body into the saga's first step; on
// bad input it answers the status (400 undecodable, 422 invalid values)
// and why.
func DecodeOrder(r *http.Request) (Command, int, string) {
	var in struct {
		ID       string `json:"id"`
		UserID   string `json:"userId"`
		SKU      string `json:"sku"`
		Quantity int    `json:"quantity"`
	}
	if err := app.ReadJSON(r, &in); err != nil {
		return Command{}, http.StatusBadRequest, "body: " + err.Error()
	}
	if in.ID == "" {
		in.ID = app.NewID()
	}
	if !validID(in.ID) || !validID(in.UserID) || !validID(in.SKU) || in.Quantity <= 0 || in.Quantity > 1000 {
		return Command{}, http.StatusUnprocessableEntity,
			"id, userId and sku must be names of at most 64 characters ([a-zA-Z0-9._-]) and quantity 1 to 1000"
	}
	return Command{Step: StepPlace, OrderID: in.ID, UserID: in.UserID, SKU: in.SKU, Quantity: in.Quantity}, 0, ""
}

func (s *Saga) getOrder(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !validID(id) {
		app.Problem(w, http.StatusNotFound, "order not found: "+id)
		return
	}
	o, err := s.LoadOrder(r.Context(), id)
	switch {
	case err != nil:
		app.Problem(w, http.StatusServiceUnavailable, "event store: "+err.Error())
	case o.Version == 0:
		app.Problem(w, http.StatusNotFound, "order not found (or not placed yet): "+id)
	default:
		app.WriteJSON(w, http.StatusOK, o)
	}
}

func (s *Saga) addStock(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Quantity int   `json:"quantity"`
		Price    int64 `json:"price"`
	}
	sku := r.PathValue("sku")
	if err := app.ReadJSON(r, &in); err != nil {
		app.Problem(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	if !validID(sku) || in.Quantity < 0 || in.Price < 0 || in.Quantity == 0 && in.Price == 0 {
		app.Problem(w, http.StatusUnprocessableEntity, "a valid sku, and a positive quantity or price (cents)")
		return
	}
	if _, err := s.ev.Append(r.Context(), StockStream(sku), eventstore.AnyVersion,
		NewEvent(StockAdded, "", "", Data{SKU: sku, Quantity: in.Quantity, Price: in.Price})); err != nil {
		app.Problem(w, http.StatusServiceUnavailable, "event store: "+err.Error())
		return
	}
	s.getStock(w, r)
}

func (s *Saga) getStock(w http.ResponseWriter, r *http.Request) {
	sku := r.PathValue("sku")
	st, err := s.LoadStock(r.Context(), sku)
	switch {
	case !validID(sku) || err == nil && st.Version == 0:
		app.Problem(w, http.StatusNotFound, "unknown item: "+sku)
	case err != nil:
		app.Problem(w, http.StatusServiceUnavailable, "event store: "+err.Error())
	default:
		app.WriteJSON(w, http.StatusOK, st)
	}
}

func (s *Saga) credit(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Amount int64 `json:"amount"`
	}
	user := r.PathValue("user")
	if err := app.ReadJSON(r, &in); err != nil {
		app.Problem(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	if !validID(user) || in.Amount <= 0 {
		app.Problem(w, http.StatusUnprocessableEntity, "a valid user id and a positive amount (cents)")
		return
	}
	if _, err := s.ev.Append(r.Context(), AccountStream(user), eventstore.AnyVersion,
		NewEvent(AccountCredited, "", "", Data{UserID: user, Amount: in.Amount})); err != nil {
		app.Problem(w, http.StatusServiceUnavailable, "event store: "+err.Error())
		return
	}
	s.getAccount(w, r)
}

func (s *Saga) getAccount(w http.ResponseWriter, r *http.Request) {
	user := r.PathValue("user")
	if !validID(user) {
		app.Problem(w, http.StatusNotFound, "unknown account: "+user)
		return
	}
	a, err := s.LoadAccount(r.Context(), user)
	if err != nil {
		app.Problem(w, http.StatusServiceUnavailable, "event store: "+err.Error())
		return
	}
	app.WriteJSON(w, http.StatusOK, a)
}
