package saga

import (
	"encoding/json"

	"github.com/plexushq/plexus/eventstore"
)

// Order statuses, one per saga state.
const (
	StatusPlaced        = "placed"
	StatusStockReserved = "stock-reserved"
	StatusStockRejected = "stock-rejected"
	StatusPaid          = "paid"
	StatusPaymentFailed = "payment-failed"
	StatusStockReleased = "stock-released"
	StatusConfirmed     = "confirmed"
	StatusCancelled     = "cancelled"
)

// statusAfter maps an order event to the status it leads to.
var statusAfter = map[string]string{
	OrderPlaced:        StatusPlaced,
	OrderStockReserved: StatusStockReserved,
	OrderStockRejected: StatusStockRejected,
	OrderPaymentTaken:  StatusPaid,
	OrderPaymentFailed: StatusPaymentFailed,
	OrderStockReleased: StatusStockReleased,
	OrderConfirmed:     StatusConfirmed,
	OrderCancelled:     StatusCancelled,
}

// StatusAfter is the status an order event leads to ("" for other types).
func StatusAfter(eventType string) string { return statusAfter[eventType] }

// Order is an order's state, folded from its stream.
type Order struct {
	ID       string   `json:"id"`
	UserID   string   `json:"userId"`
	SKU      string   `json:"sku"`
	Quantity int      `json:"quantity"`
	Amount   int64    `json:"amount"`
	Status   string   `json:"status"`
	Reason   string   `json:"reason,omitempty"`
	Version  int64    `json:"version"`
	History  []string `json:"history"`
}

func foldOrder(id string, evs []eventstore.Envelope) Order {
	o := Order{ID: id, History: []string{}}
	for _, e := range evs {
		var d Data
		_ = json.Unmarshal(e.Data, &d)
		if e.Type == OrderPlaced {
			o.UserID, o.SKU, o.Quantity, o.Amount = d.UserID, d.SKU, d.Quantity, d.Amount
		}
		if d.Reason != "" {
			o.Reason = d.Reason
		}
		if s, ok := statusAfter[e.Type]; ok {
			o.Status = s
		}
		o.History = append(o.History, e.Type)
		o.Version = e.Version
	}
	return o
}

// next is the step that follows the order's status ("" when the saga ended).
func (o Order) next() string {
	switch o.Status {
	case StatusPlaced:
		return StepReserveStock
	case StatusStockReserved:
		return StepTakePayment
	case StatusPaid:
		return StepConfirm
	case StatusPaymentFailed:
		return StepReleaseStock
	case StatusStockRejected, StatusStockReleased:
		return StepCancel
	}
	return ""
}

// Stock is an item's stock, folded from its stream: on hand, and the
// quantities held for orders.
type Stock struct {
	SKU      string         `json:"sku"`
	Price    int64          `json:"price"`
	OnHand   int            `json:"onHand"`
	Reserved int            `json:"reserved"`
	Holds    map[string]int `json:"holds"`
	Version  int64          `json:"version"`
}

// Available is what new orders may reserve.
func (s Stock) Available() int { return s.OnHand - s.Reserved }

func foldStock(sku string, evs []eventstore.Envelope) Stock {
	s := Stock{SKU: sku, Holds: map[string]int{}}
	for _, e := range evs {
		var d Data
		_ = json.Unmarshal(e.Data, &d)
		switch e.Type {
		case StockAdded:
			s.OnHand += d.Quantity
			if d.Price > 0 {
				s.Price = d.Price
			}
		case StockReserved:
			s.Reserved += d.Quantity
			s.Holds[d.OrderID] = d.Quantity
		case StockReleased:
			s.Reserved -= d.Quantity
			delete(s.Holds, d.OrderID)
		}
		s.Version = e.Version
	}
	return s
}

// Account is a user's balance and the charges taken, by order.
type Account struct {
	UserID  string           `json:"userId"`
	Balance int64            `json:"balance"`
	Charges map[string]int64 `json:"charges"`
	Version int64            `json:"version"`
}

func foldAccount(user string, evs []eventstore.Envelope) Account {
	a := Account{UserID: user, Charges: map[string]int64{}}
	for _, e := range evs {
		var d Data
		_ = json.Unmarshal(e.Data, &d)
		switch e.Type {
		case AccountCredited:
			a.Balance += d.Amount
		case AccountCharged:
			a.Balance -= d.Amount
			a.Charges[d.OrderID] = d.Amount
		}
		a.Version = e.Version
	}
	return a
}
