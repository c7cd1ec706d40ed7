package readmodel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/plexushq/plexus/eventstore"
)

// Reader reads the event store's global log (*eventstore.Client is one).
type Reader interface {
	ReadAll(ctx context.Context, q eventstore.Query) (eventstore.Page, error)
}

// Config configures a projector.
type Config struct {
	// Schema holds the read model's tables; default "readmodel".
	Schema string
	// Name of the checkpoint row; default "order-projector".
	Name string
	// Batch is the number of events read and applied per transaction;
	// default 100, at most eventstore.MaxReadLimit.
	Batch int
	// Poll is the wait between reads once caught up; default 250ms.
	Poll time.Duration
	// Logger; nil: discard.
	Logger *slog.Logger
}

func (c *Config) defaults() error {
	if c.Schema == "" {
		c.Schema = "readmodel"
	}
	if c.Name == "" {
		c.Name = "order-projector"
	}
	if c.Batch == 0 {
		c.Batch = 100
	}
	if c.Poll == 0 {
		c.Poll = 250 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if !schemaRe.MatchString(c.Schema) {
		return fmt.Errorf("schema %q: want %s", c.Schema, schemaRe)
	}
	if c.Batch < 1 || c.Batch > eventstore.MaxReadLimit {
		return fmt.Errorf("batch %d: want 1 to %d", c.Batch, eventstore.MaxReadLimit)
	}
	return nil
}

// ErrMoved is returned when the checkpoint is not where this projector
// left it: another projector of the same name applied events meanwhile.
// Nothing of the page was committed.
var ErrMoved = errors.New("checkpoint moved by another projector")

// Projector applies the log to one read model. It holds one connection;
// it is not safe for concurrent use.
type Projector struct {
	cfg Config
	ev  Reader
	db  *pgx.Conn
}

// New prepares a projector on db (its schema is created when missing).
func New(ctx context.Context, ev Reader, db *pgx.Conn, cfg Config) (*Projector, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if err := createSchema(ctx, db, cfg.Schema, cfg.Name); err != nil {
		return nil, err
	}
	return &Projector{cfg: cfg, ev: ev, db: db}, nil
}

// Checkpoint is the position of the last event applied (0: none).
func (p *Projector) Checkpoint(ctx context.Context) (uint64, error) {
	var pos uint64
	err := p.db.QueryRow(ctx, fmt.Sprintf(`SELECT position FROM %s.checkpoints WHERE name = $1`, p.cfg.Schema), p.cfg.Name).Scan(&pos)
	return pos, err
}

// Step reads the page after the checkpoint and applies it with the new
// checkpoint in one transaction; it answers the events read (0: caught up).
func (p *Projector) Step(ctx context.Context) (int, error) {
	from, err := p.Checkpoint(ctx)
	if err != nil {
		return 0, err
	}
	page, err := p.ev.ReadAll(ctx, eventstore.Query{FromPosition: from + 1, Limit: p.cfg.Batch})
	if err != nil || len(page.Events) == 0 {
		return 0, err
	}
	last := page.Events[len(page.Events)-1].Position
	err = pgx.BeginFunc(ctx, p.db, func(tx pgx.Tx) error {
		for _, e := range page.Events {
			if err := apply(ctx, tx, p.cfg.Schema, e); err != nil {
				return err
			}
		}
		tag, err := tx.Exec(ctx, fmt.Sprintf(`UPDATE %s.checkpoints SET position = $3 WHERE name = $1 AND position = $2`, p.cfg.Schema),
			p.cfg.Name, from, last)
		if err == nil && tag.RowsAffected() != 1 {
			err = fmt.Errorf("%w: %s was at %d", ErrMoved, p.cfg.Name, from)
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	return len(page.Events), nil
}

// CatchUp applies pages until the log has no more events; it answers how
// many it applied.
func (p *Projector) CatchUp(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := p.Step(ctx)
		total += n
		if err != nil || n == 0 {
			return total, err
		}
	}
}

// Run applies the log until ctx ends, waiting Poll when caught up and
// retrying with a backoff after an error. It answers nil when ctx ends.
func (p *Projector) Run(ctx context.Context) error {
	p.serve(ctx, nil)
	return nil
}

// Rebuild empties the read model and sets the checkpoint to 0 in one
// transaction; the next Step starts again from the first event.
func (p *Projector) Rebuild(ctx context.Context) error {
	return pgx.BeginFunc(ctx, p.db, func(tx pgx.Tx) error {
		s := p.cfg.Schema
		if _, err := tx.Exec(ctx, fmt.Sprintf(`TRUNCATE %[1]s.orders, %[1]s.stock, %[1]s.accounts, %[1]s.payments`, s)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, fmt.Sprintf(`UPDATE %s.checkpoints SET position = 0 WHERE name = $1`, s), p.cfg.Name)
		return err
	})
}
