package readmodel

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/plexushq/plexus/eventstore"
	"github.com/plexushq/plexus/examples/internal/saga"
)

// apply writes one event into the read model inside tx. Events of other
// types are not part of this model and change nothing. Increments are
// safe because the checkpoint commits with them: an event is applied
// exactly once.
func apply(ctx context.Context, tx pgx.Tx, schema string, e eventstore.Envelope) error {
	var d saga.Data
	if err := json.Unmarshal(e.Data, &d); err != nil {
		return fmt.Errorf("event %d (%s): %w", e.Position, e.Type, err)
	}
	q := func(sql string, args ...any) error {
		_, err := tx.Exec(ctx, fmt.Sprintf(sql, schema), args...)
		if err != nil {
			return fmt.Errorf("event %d (%s): %w", e.Position, e.Type, err)
		}
		return nil
	}
	id := d.OrderID
	switch e.Type {
	case saga.OrderPlaced:
		return q(`INSERT INTO %s.orders (id, user_id, sku, quantity, amount, status, placed_at, updated_at, position)
VALUES ($1, $2, $3, $4, $5, 'placed', $6, $6, $7)`, id, d.UserID, d.SKU, d.Quantity, d.Amount, e.Timestamp, e.Position)
	case saga.OrderStockReserved, saga.OrderStockRejected, saga.OrderPaymentTaken, saga.OrderPaymentFailed,
		saga.OrderStockReleased, saga.OrderConfirmed, saga.OrderCancelled:
		return q(`UPDATE %s.orders SET status = $2, reason = CASE WHEN $3 = '' THEN reason ELSE $3 END,
updated_at = $4, position = $5 WHERE id = $1`, id, saga.StatusAfter(e.Type), d.Reason, e.Timestamp, e.Position)
	case saga.StockAdded:
		return q(`INSERT INTO %s.stock AS s (sku, price, on_hand) VALUES ($1, $2, $3)
ON CONFLICT (sku) DO UPDATE SET on_hand = s.on_hand + excluded.on_hand,
price = CASE WHEN excluded.price > 0 THEN excluded.price ELSE s.price END`, d.SKU, d.Price, d.Quantity)
	case saga.StockReserved:
		return q(`UPDATE %s.stock SET reserved = reserved + $2 WHERE sku = $1`, d.SKU, d.Quantity)
	case saga.StockReleased:
		return q(`UPDATE %s.stock SET reserved = reserved - $2 WHERE sku = $1`, d.SKU, d.Quantity)
	case saga.AccountCredited:
		return q(`INSERT INTO %s.accounts AS a (user_id, balance) VALUES ($1, $2)
ON CONFLICT (user_id) DO UPDATE SET balance = a.balance + excluded.balance`, d.UserID, d.Amount)
	case saga.AccountCharged:
		if err := q(`INSERT INTO %s.accounts AS a (user_id, balance, charged, payments) VALUES ($1, -$2::bigint, $2, 1)
ON CONFLICT (user_id) DO UPDATE SET balance = a.balance - $2, charged = a.charged + $2, payments = a.payments + 1`,
			d.UserID, d.Amount); err != nil {
			return err
		}
		return q(`INSERT INTO %s.payments (order_id, user_id, amount, taken_at, position) VALUES ($1, $2, $3, $4, $5)`,
			id, d.UserID, d.Amount, e.Timestamp, e.Position)
	}
	return nil
}
