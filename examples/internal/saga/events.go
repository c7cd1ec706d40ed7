// Package saga is the order-saga example: an order goes placed → stock
// reserved → payment taken → confirmed, and a failed step is compensated
// (stock released, order cancelled). Every step is a message on the
// order-saga queue that any instance may handle, and every outcome is an
// event in the order's stream of the event store, which is the saga's
// log. Steps are idempotent: a handler reads the streams to learn what is
// already done, so a redelivered message never repeats an effect (never
// reserves twice, never charges twice), and optimistic concurrency on the
// streams settles two instances racing on the same stock or account.
package saga

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/plexushq/plexus/eventstore"
)

// Name is the service's registered name; Queue carries the saga's steps.
const (
	Name  = "order-saga"
	Queue = "order-saga"
)

// Event types. The order's stream records the saga; stock and account
// streams record the participants' effects.
const (
	OrderPlaced        = "order.placed"
	OrderStockReserved = "order.stock-reserved"
	OrderStockRejected = "order.stock-rejected"
	OrderPaymentTaken  = "order.payment-taken"
	OrderPaymentFailed = "order.payment-failed"
	OrderStockReleased = "order.stock-released"
	OrderConfirmed     = "order.confirmed"
	OrderCancelled     = "order.cancelled"

	StockAdded    = "stock.added"
	StockReserved = "stock.reserved"
	StockReleased = "stock.released"

	AccountCredited = "account.credited"
	AccountCharged  = "account.charged"
)

// OrderStream, StockStream and AccountStream name the streams (categories
// order, stock and account).
func OrderStream(id string) string     { return "order-" + id }
func StockStream(sku string) string    { return "stock-" + sku }
func AccountStream(user string) string { return "account-" + user }

// Data is the body of every saga event; each type sets the fields it needs.
// Amounts and prices are in cents.
type Data struct {
	OrderID  string `json:"orderId,omitempty"`
	UserID   string `json:"userId,omitempty"`
	SKU      string `json:"sku,omitempty"`
	Quantity int    `json:"quantity,omitempty"`
	Price    int64  `json:"price,omitempty"`
	Amount   int64  `json:"amount,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// NewEvent builds an event of type typ about order (its correlation id),
// caused by the command causation.
func NewEvent(typ, order, causation string, d Data) eventstore.Event {
	b, _ := json.Marshal(d)
	return eventstore.Event{Type: typ, Data: b, CorrelationID: order, CausationID: causation, Source: Name}
}

// Events is what the saga needs of the event store; *eventstore.Client is
// one (the tests wrap it to lose answers).
type Events interface {
	Append(ctx context.Context, stream string, expected int64, events ...eventstore.Event) (eventstore.AppendResult, error)
	ReadStream(ctx context.Context, stream string, fromVersion int64, limit int) ([]eventstore.Envelope, error)
}

// readAll reads a whole stream page by page; a stream without events
// answers none.
func readAll(ctx context.Context, ev Events, stream string) ([]eventstore.Envelope, error) {
	const page = 1000
	var all []eventstore.Envelope
	for from := int64(1); ; {
		evs, err := ev.ReadStream(ctx, stream, from, page)
		if errors.Is(err, eventstore.ErrStreamNotFound) {
			return all, nil
		}
		if err != nil {
			return nil, err
		}
		all = append(all, evs...)
		if len(evs) < page {
			return all, nil
		}
		from = evs[len(evs)-1].Version + 1
	}
}
