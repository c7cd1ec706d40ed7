// Package readmodel is the CQRS read model of the order saga: a
// projection of the event store's global log into PostgreSQL tables
// (orders, stock, accounts, payments). Each page of events is applied in
// one transaction together with the checkpoint, so a crash at any point
// leaves the whole page applied or none of it, and no event is ever
// applied twice; Rebuild empties the tables and starts again from
// position 0.
package readmodel

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
)

var schemaRe = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// tables of the read model, in dump order, with their sort keys.
var tables = []struct{ name, key string }{
	{"orders", "id"},
	{"stock", "sku"},
	{"accounts", "user_id"},
	{"payments", "order_id"},
	{"checkpoints", "name"},
}

const ddl = `
CREATE SCHEMA IF NOT EXISTS %[1]s;
CREATE TABLE IF NOT EXISTS %[1]s.orders (
  id         text PRIMARY KEY,
  user_id    text NOT NULL,
  sku        text NOT NULL,
  quantity   int NOT NULL,
  amount     bigint NOT NULL,
  status     text NOT NULL,
  reason     text NOT NULL DEFAULT '',
  placed_at  timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  position   bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS %[1]s.stock (
  sku      text PRIMARY KEY,
  price    bigint NOT NULL DEFAULT 0,
  on_hand  int NOT NULL DEFAULT 0,
  reserved int NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS %[1]s.accounts (
  user_id  text PRIMARY KEY,
  balance  bigint NOT NULL DEFAULT 0,
  charged  bigint NOT NULL DEFAULT 0,
  payments int NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS %[1]s.payments (
  order_id text PRIMARY KEY,
  user_id  text NOT NULL,
  amount   bigint NOT NULL,
  taken_at timestamptz NOT NULL,
  position bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS %[1]s.checkpoints (
  name     text PRIMARY KEY,
  position bigint NOT NULL
);`

// createSchema creates the schema and its tables when missing, and the
// projection's checkpoint row at 0.
func createSchema(ctx context.Context, db *pgx.Conn, schema, name string) error {
	if _, err := db.Exec(ctx, fmt.Sprintf(ddl, schema)); err != nil {
		return fmt.Errorf("read model schema %s: %w", schema, err)
	}
	_, err := db.Exec(ctx, fmt.Sprintf(`INSERT INTO %s.checkpoints (name, position) VALUES ($1, 0) ON CONFLICT DO NOTHING`, schema), name)
	return err
}

// Dump is every row of a read model's tables as JSON lines in key order:
// two read models hold the same data exactly when their dumps are equal.
// The checkpoint rows are included.
func Dump(ctx context.Context, db *pgx.Conn, schema string) (string, error) {
	if !schemaRe.MatchString(schema) {
		return "", fmt.Errorf("schema %q: want %s", schema, schemaRe)
	}
	var b strings.Builder
	for _, t := range tables {
		rows, err := db.Query(ctx, fmt.Sprintf(`SELECT row_to_json(t)::text FROM %s.%s t ORDER BY %s`, schema, t.name, t.key))
		if err != nil {
			return "", err
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "-- %s (%d rows)\n", t.name, len(lines))
		for _, l := range lines {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	return b.String(), nil
}
