package examples_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/plexushq/plexus/eventstore"
	"github.com/plexushq/plexus/examples/internal/app"
	"github.com/plexushq/plexus/examples/internal/readmodel"
	"github.com/plexushq/plexus/examples/internal/saga"
	"github.com/plexushq/plexus/internal/pgtest"
	"github.com/plexushq/plexus/queue"
)

// sagaEnv is a real node, order-saga instances in-process, a real
// PostgreSQL and the read model projected into it.
type sagaEnv struct {
	admin, gw string
	events    *eventstore.Client
	db        *pgx.Conn
	proj      *readmodel.Projector
}

func newSagaEnv(t *testing.T, instances int, wrap func(saga.Events) saga.Events) *sagaEnv {
	t.Helper()
	n := startNode(t)
	e := &sagaEnv{admin: "http://" + n.AdminAddr(), gw: "http://" + n.GatewayAddr()}
	e.events = eventstore.NewClient(e.admin, token, nil)
	for i := range instances {
		w := wrap
		if i > 0 {
			w = nil // faults in the first instance only
		}
		runService(t, e.admin, fmt.Sprintf("order-saga-%d", i+1), func(ctx context.Context, cfg app.Config) error {
			return saga.RunWith(ctx, cfg, w)
		})
	}
	eventually(t, 10*time.Second, "gateway routes order-saga", func() bool {
		return do(t, "GET", e.gw+"/api/order-saga/health", nil, nil) == http.StatusOK
	})
	url := pgtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close(context.Background()) })
	e.db = db
	if e.proj, err = readmodel.New(ctx, e.events, db, readmodel.Config{}); err != nil {
		t.Fatal(err)
	}
	return e
}

// api is the saga's HTTP API through the gateway.
func (e *sagaEnv) api(path string) string { return e.gw + "/api/order-saga" + path }

func (e *sagaEnv) stock(t *testing.T, sku string, qty int, price int64) {
	t.Helper()
	if code := do(t, "POST", e.api("/stock/"+sku), map[string]any{"quantity": qty, "price": price}, nil); code != http.StatusOK {
		t.Fatalf("add stock %s: HTTP %d", sku, code)
	}
}

func (e *sagaEnv) credit(t *testing.T, user string, amount int64) {
	t.Helper()
	if code := do(t, "POST", e.api("/accounts/"+user+"/credits"), map[string]any{"amount": amount}, nil); code != http.StatusOK {
		t.Fatalf("credit %s: HTTP %d", user, code)
	}
}

func (e *sagaEnv) order(t *testing.T, id, user, sku string, qty int) {
	t.Helper()
	if code := do(t, "POST", e.api("/orders"), map[string]any{"id": id, "userId": user, "sku": sku, "quantity": qty}, nil); code != http.StatusAccepted {
		t.Fatalf("place order %s: HTTP %d", id, code)
	}
}

// settled waits until the order's saga ended and answers the order.
func (e *sagaEnv) settled(t *testing.T, id string) saga.Order {
	t.Helper()
	var o saga.Order
	eventually(t, 30*time.Second, "order "+id+" settles", func() bool {
		o = saga.Order{}
		code := do(t, "GET", e.api("/orders/"+id), nil, &o)
		return code == http.StatusOK && (o.Status == saga.StatusConfirmed || o.Status == saga.StatusCancelled)
	})
	return o
}

func (e *sagaEnv) streamTypes(t *testing.T, stream string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	evs, err := e.events.ReadStream(ctx, stream, 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, ev := range evs {
		types = append(types, ev.Type)
	}
	return types
}

// view catches the read model up and answers one row as text.
func (e *sagaEnv) view(t *testing.T, sql string, args ...any) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := e.proj.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	var s string
	if err := e.db.QueryRow(ctx, sql, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

func wantTypes(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: %v, want %v", what, got, want)
	}
}

// TestSagaFailedPaymentCompensates: an order the user cannot pay reserves
// stock, fails the payment, releases the stock and is cancelled; one the
// user can pay is confirmed. The streams, the saga's API and the read
// model in PostgreSQL all say so.
func TestSagaFailedPaymentCompensates(t *testing.T) {
	e := newSagaEnv(t, 1, nil)
	e.stock(t, "book", 5, 1250)
	e.credit(t, "ann", 1000) // less than 2 × 12.50
	e.credit(t, "bob", 5000)

	e.order(t, "o-poor", "ann", "book", 2)
	o := e.settled(t, "o-poor")
	wantTypes(t, "order o-poor", o.History, saga.OrderPlaced, saga.OrderStockReserved, saga.OrderPaymentFailed,
		saga.OrderStockReleased, saga.OrderCancelled)
	if o.Status != saga.StatusCancelled || o.Reason != "insufficient funds: balance 1000, amount 2500" {
		t.Fatalf("order %+v", o)
	}
	wantTypes(t, "stock-book", e.streamTypes(t, saga.StockStream("book")), saga.StockAdded, saga.StockReserved, saga.StockReleased)
	wantTypes(t, "account-ann", e.streamTypes(t, saga.AccountStream("ann")), saga.AccountCredited)

	e.order(t, "o-rich", "bob", "book", 2)
	if o := e.settled(t, "o-rich"); o.Status != saga.StatusConfirmed {
		t.Fatalf("order o-rich %+v", o)
	}
	var st saga.Stock
	do(t, "GET", e.api("/stock/book"), nil, &st)
	var ann, bob saga.Account
	do(t, "GET", e.api("/accounts/ann"), nil, &ann)
	do(t, "GET", e.api("/accounts/bob"), nil, &bob)
	if st.Available() != 3 || st.Reserved != 2 || ann.Balance != 1000 || len(ann.Charges) != 0 || bob.Balance != 2500 {
		t.Fatalf("stock %+v, ann %+v, bob %+v", st, ann, bob)
	}

	if got := e.view(t, `SELECT status || ' ' || reason FROM readmodel.orders WHERE id = 'o-poor'`); got != "cancelled insufficient funds: balance 1000, amount 2500" {
		t.Fatalf("read model o-poor: %q", got)
	}
	if got := e.view(t, `SELECT on_hand || '/' || reserved FROM readmodel.stock WHERE sku = 'book'`); got != "5/2" {
		t.Fatalf("read model stock: %q, want 5/2", got)
	}
	if got := e.view(t, `SELECT string_agg(user_id || '=' || balance || ':' || payments, ' ' ORDER BY user_id) FROM readmodel.accounts`); got != "ann=1000:0 bob=2500:1" {
		t.Fatalf("read model accounts: %q", got)
	}
}

// loseAnswers wraps the event store so that the first append of each
// listed type is stored but answers an error, as when a node's answer is
// lost or the handler dies right after the write: the queue redelivers the
// step, which must find the write and not repeat it.
type loseAnswers struct {
	saga.Events
	mu    sync.Mutex
	types map[string]int // type → appends still to lose
	lost  int
	calls map[string]int // type → appends tried
}

var errLost = errors.New("injected: answer lost after the write")

func (l *loseAnswers) Append(ctx context.Context, stream string, expected int64, evs ...eventstore.Event) (eventstore.AppendResult, error) {
	res, err := l.Events.Append(ctx, stream, expected, evs...)
	l.mu.Lock()
	defer l.mu.Unlock()
	typ := evs[0].Type
	l.calls[typ]++
	if err == nil && l.types[typ] > 0 {
		l.types[typ]--
		l.lost++
		return eventstore.AppendResult{}, errLost
	}
	return res, err
}

// TestSagaRedeliveryDoesNotDoubleCharge: the charge, the hold and the
// order's payment record are each written once but answered with an
// error, so their steps are redelivered by the queue; a take-payment
// command is then delivered again long after the order was confirmed.
// The user is charged once, the stock held once, and every stream holds
// each event once.
func TestSagaRedeliveryDoesNotDoubleCharge(t *testing.T) {
	faults := &loseAnswers{types: map[string]int{saga.AccountCharged: 1, saga.StockReserved: 1, saga.OrderPaymentTaken: 1},
		calls: map[string]int{}}
	e := newSagaEnv(t, 1, func(ev saga.Events) saga.Events { faults.Events = ev; return faults })
	e.stock(t, "pen", 10, 300)
	e.credit(t, "cy", 10000)

	e.order(t, "o-1", "cy", "pen", 3)
	o := e.settled(t, "o-1")
	wantTypes(t, "order o-1", o.History, saga.OrderPlaced, saga.OrderStockReserved, saga.OrderPaymentTaken, saga.OrderConfirmed)
	faults.mu.Lock()
	lost, charges, holds := faults.lost, faults.calls[saga.AccountCharged], faults.calls[saga.StockReserved]
	faults.mu.Unlock()
	if lost != 3 || charges != 1 || holds != 1 {
		t.Fatalf("%d answers lost, %d charge appends, %d hold appends; want 3, 1, 1", lost, charges, holds)
	}

	// A duplicate beyond the queue's dedupe window: the same step under
	// another message id.
	q, err := queue.NewClient(e.admin, token, queue.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dup, err := app.JSONMessage("o-1.take-payment.again", saga.Command{Step: saga.StepTakePayment, OrderID: "o-1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Publish(ctx, saga.Queue, dup); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the duplicate is consumed", func() bool {
		var s struct {
			QueueSize int `json:"queueSize"`
		}
		return qstats(t, e.admin, saga.Queue, &s) && s.QueueSize == 0
	})

	wantTypes(t, "account-cy", e.streamTypes(t, saga.AccountStream("cy")), saga.AccountCredited, saga.AccountCharged)
	wantTypes(t, "stock-pen", e.streamTypes(t, saga.StockStream("pen")), saga.StockAdded, saga.StockReserved)
	wantTypes(t, "order-o-1", e.streamTypes(t, saga.OrderStream("o-1")), saga.OrderPlaced, saga.OrderStockReserved,
		saga.OrderPaymentTaken, saga.OrderConfirmed)
	var acc saga.Account
	do(t, "GET", e.api("/accounts/cy"), nil, &acc)
	if acc.Balance != 10000-900 || len(acc.Charges) != 1 {
		t.Fatalf("account %+v, want one charge of 900", acc)
	}
	// The queue counts the three failed attempts (its counters are
	// flushed every second).
	eventually(t, 10*time.Second, "three failed attempts counted", func() bool {
		var s struct {
			ErrorMessages int `json:"errorMessages"`
		}
		return qstats(t, e.admin, saga.Queue, &s) && s.ErrorMessages >= 3
	})
	if got := e.view(t, `SELECT balance || ' ' || payments || ' ' || (SELECT count(*) FROM readmodel.payments) FROM readmodel.accounts WHERE user_id = 'cy'`); got != "9100 1 1" {
		t.Fatalf("read model: %q, want balance 9100, one payment", got)
	}
}

// TestSagaConcurrentOrdersNeverOversell: two instances take eight orders
// for three items at once; optimistic concurrency on the item's stream
// lets exactly three reserve, and the rest are cancelled as out of stock.
func TestSagaConcurrentOrdersNeverOversell(t *testing.T) {
	e := newSagaEnv(t, 2, nil)
	e.stock(t, "lamp", 3, 100)
	e.credit(t, "dee", 100000)
	for i := range 8 {
		e.order(t, fmt.Sprintf("c-%d", i), "dee", "lamp", 1)
	}
	confirmed := 0
	for i := range 8 {
		o := e.settled(t, fmt.Sprintf("c-%d", i))
		if o.Status == saga.StatusConfirmed {
			confirmed++
		} else if !slices.Contains(o.History, saga.OrderStockRejected) {
			t.Fatalf("order %s cancelled without running out of stock: %v", o.ID, o.History)
		}
	}
	var st saga.Stock
	do(t, "GET", e.api("/stock/lamp"), nil, &st)
	if confirmed != 3 || st.Reserved != 3 || st.Available() != 0 {
		t.Fatalf("%d confirmed, stock %+v; want 3 and none left", confirmed, st)
	}
	if got := e.view(t, `SELECT count(*) FILTER (WHERE status = 'confirmed') || '/' || count(*) FROM readmodel.orders`); got != "3/8" {
		t.Fatalf("read model: %q confirmed/all, want 3/8", got)
	}
}

func qstats(t *testing.T, admin, queue string, out any) bool {
	t.Helper()
	req, _ := http.NewRequest("GET", admin+"/v1/queues/"+queue, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(out) == nil
}
