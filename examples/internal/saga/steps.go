package saga

import (
	"context"
	"errors"
	"fmt"

	"github.com/plexushq/plexus/eventstore"
	"github.com/plexushq/plexus/examples/internal/app"
	"github.com/plexushq/plexus/queue"
)

// Steps: the message of each names one.
const (
	StepPlace        = "place"
	StepReserveStock = "reserve-stock"
	StepTakePayment  = "take-payment"
	StepConfirm      = "confirm"
	StepReleaseStock = "release-stock"
	StepCancel       = "cancel"
)

// Command is a message on the saga's queue. Place carries the order; the
// other steps only its id.
type Command struct {
	Step     string `json:"step"`
	OrderID  string `json:"orderId"`
	UserID   string `json:"userId,omitempty"`
	SKU      string `json:"sku,omitempty"`
	Quantity int    `json:"quantity,omitempty"`
}

// MessageID is the command's message id: the queue stores a republished
// step once (its dedupe window) and the events name it as their cause.
func (c Command) MessageID() string { return c.OrderID + "." + c.Step }

// ErrNotPlaced is returned for a step of an order whose stream has no
// events yet; the message is retried.
var ErrNotPlaced = errors.New("order not placed")

// publisher publishes a step (queue.Client is one).
type publisher interface {
	Publish(ctx context.Context, queue string, m queue.Message) (string, error)
}

// Saga runs the steps.
type Saga struct {
	ev Events
	q  publisher
}

// New returns a saga over an event store and the queue.
func New(ev Events, q publisher) *Saga { return &Saga{ev: ev, q: q} }

// Handle runs one step. A version conflict (another instance moved a
// stream meanwhile) is decided again from fresh state, a few times.
func (s *Saga) Handle(ctx context.Context, c Command) error {
	var err error
	for range 5 {
		err = s.step(ctx, c)
		if !errors.Is(err, eventstore.ErrConflict) {
			return err
		}
	}
	return err
}

// step applies c when the order's state still calls for it, then
// publishes the step its (new) state calls for. A step that no longer
// applies (a redelivery) changes nothing and republishes the next one,
// which the queue stores once.
func (s *Saga) step(ctx context.Context, c Command) error {
	o, err := s.LoadOrder(ctx, c.OrderID)
	if err != nil {
		return err
	}
	cause := c.MessageID()
	if o.Version == 0 {
		if c.Step != StepPlace {
			return fmt.Errorf("%s of %s: %w", c.Step, c.OrderID, ErrNotPlaced)
		}
		err = s.place(ctx, &o, c, cause)
	} else if o.next() == c.Step {
		err = s.apply(ctx, &o, cause)
	}
	if err != nil {
		return err
	}
	next := o.next()
	if next == "" {
		return nil
	}
	n := Command{Step: next, OrderID: o.ID}
	m, err := app.JSONMessage(n.MessageID(), n)
	if err != nil {
		return err
	}
	_, err = s.q.Publish(ctx, Queue, m)
	return err
}

func (s *Saga) apply(ctx context.Context, o *Order, cause string) error {
	switch o.next() {
	case StepReserveStock:
		return s.reserve(ctx, o, cause)
	case StepTakePayment:
		return s.pay(ctx, o, cause)
	case StepConfirm:
		return s.record(ctx, o, cause, OrderConfirmed, Data{OrderID: o.ID})
	case StepReleaseStock:
		return s.release(ctx, o, cause)
	case StepCancel:
		return s.record(ctx, o, cause, OrderCancelled, Data{OrderID: o.ID, Reason: o.Reason})
	}
	return nil
}

// record appends one event to the order's stream at its known version and
// folds it into o.
func (s *Saga) record(ctx context.Context, o *Order, cause, typ string, d Data) error {
	e := NewEvent(typ, o.ID, cause, d)
	res, err := s.ev.Append(ctx, OrderStream(o.ID), o.Version, e)
	if err != nil {
		return err
	}
	o.Status, o.Version = statusAfter[typ], res.Version
	if d.Reason != "" {
		o.Reason = d.Reason
	}
	o.History = append(o.History, typ)
	return nil
}

func (s *Saga) place(ctx context.Context, o *Order, c Command, cause string) error {
	st, err := s.LoadStock(ctx, c.SKU)
	if err != nil {
		return err
	}
	o.UserID, o.SKU, o.Quantity, o.Amount = c.UserID, c.SKU, c.Quantity, st.Price*int64(c.Quantity)
	return s.record(ctx, o, cause, OrderPlaced, Data{OrderID: o.ID, UserID: c.UserID, SKU: c.SKU,
		Quantity: c.Quantity, Price: st.Price, Amount: o.Amount})
}

// reserve holds the order's quantity on the item's stream unless a hold
// for this order is already there (a redelivery after the hold was
// written but before the order recorded it).
func (s *Saga) reserve(ctx context.Context, o *Order, cause string) error {
	st, err := s.LoadStock(ctx, o.SKU)
	if err != nil {
		return err
	}
	if _, held := st.Holds[o.ID]; !held {
		if st.Available() < o.Quantity {
			return s.record(ctx, o, cause, OrderStockRejected, Data{OrderID: o.ID,
				Reason: fmt.Sprintf("out of stock: %d of %s available, %d ordered", st.Available(), o.SKU, o.Quantity)})
		}
		if _, err := s.ev.Append(ctx, StockStream(o.SKU), st.Version, NewEvent(StockReserved, o.ID, cause,
			Data{OrderID: o.ID, SKU: o.SKU, Quantity: o.Quantity})); err != nil {
			return err
		}
	}
	return s.record(ctx, o, cause, OrderStockReserved, Data{OrderID: o.ID, SKU: o.SKU, Quantity: o.Quantity})
}

// pay charges the user's account unless a charge for this order is
// already there: a redelivered payment never charges twice.
func (s *Saga) pay(ctx context.Context, o *Order, cause string) error {
	acc, err := s.LoadAccount(ctx, o.UserID)
	if err != nil {
		return err
	}
	if _, charged := acc.Charges[o.ID]; !charged {
		if acc.Balance < o.Amount {
			return s.record(ctx, o, cause, OrderPaymentFailed, Data{OrderID: o.ID,
				Reason: fmt.Sprintf("insufficient funds: balance %d, amount %d", acc.Balance, o.Amount)})
		}
		if _, err := s.ev.Append(ctx, AccountStream(o.UserID), acc.Version, NewEvent(AccountCharged, o.ID, cause,
			Data{OrderID: o.ID, UserID: o.UserID, Amount: o.Amount})); err != nil {
			return err
		}
	}
	return s.record(ctx, o, cause, OrderPaymentTaken, Data{OrderID: o.ID, UserID: o.UserID, Amount: o.Amount})
}

// release gives the order's hold back (compensation of reserve).
func (s *Saga) release(ctx context.Context, o *Order, cause string) error {
	st, err := s.LoadStock(ctx, o.SKU)
	if err != nil {
		return err
	}
	if q, held := st.Holds[o.ID]; held {
		if _, err := s.ev.Append(ctx, StockStream(o.SKU), st.Version, NewEvent(StockReleased, o.ID, cause,
			Data{OrderID: o.ID, SKU: o.SKU, Quantity: q})); err != nil {
			return err
		}
	}
	return s.record(ctx, o, cause, OrderStockReleased, Data{OrderID: o.ID, SKU: o.SKU, Quantity: o.Quantity})
}

// LoadOrder folds an order's stream (Version 0: not placed).
func (s *Saga) LoadOrder(ctx context.Context, id string) (Order, error) {
	evs, err := readAll(ctx, s.ev, OrderStream(id))
	return foldOrder(id, evs), err
}

// LoadStock folds an item's stream.
func (s *Saga) LoadStock(ctx context.Context, sku string) (Stock, error) {
	evs, err := readAll(ctx, s.ev, StockStream(sku))
	return foldStock(sku, evs), err
}

// LoadAccount folds a user's account stream.
func (s *Saga) LoadAccount(ctx context.Context, user string) (Account, error) {
	evs, err := readAll(ctx, s.ev, AccountStream(user))
	return foldAccount(user, evs), err
}
