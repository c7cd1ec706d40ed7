package readmodel

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/plexushq/plexus/eventstore"
	"github.com/plexushq/plexus/examples/internal/app"
	"github.com/plexushq/plexus/service"
)

// Name is the service's registered name.
const Name = "order-projector"

// Options configure the order-projector command.
type Options struct {
	// DatabaseURL of PostgreSQL (--database-url, DATABASE_URL).
	DatabaseURL string
	// Rebuild empties the read model first (--rebuild).
	Rebuild bool
	Config
}

// Run projects the log into PostgreSQL and serves /health and
// GET /status until ctx ends or SIGTERM/SIGINT arrives.
func Run(ctx context.Context, cfg app.Config, opts Options) error {
	sc, err := cfg.Service(Name)
	if err != nil {
		return err
	}
	db, err := connect(ctx, opts.DatabaseURL, time.Minute)
	if err != nil {
		return err
	}
	defer db.Close(context.WithoutCancel(ctx))
	if opts.Logger == nil {
		opts.Logger = sc.Logger
	}
	ev := eventstore.NewClient(cfg.AdminURL, cfg.Token, &http.Client{Timeout: 15 * time.Second})
	p, err := New(ctx, ev, db, opts.Config)
	if err != nil {
		return err
	}
	if opts.Rebuild {
		if err := p.Rebuild(ctx); err != nil {
			return fmt.Errorf("rebuild: %w", err)
		}
		opts.Logger.Info("read model emptied; rebuilding from position 0", "schema", p.cfg.Schema)
	}
	s, err := service.New(ctx, sc)
	if err != nil {
		return err
	}
	// The projector and the status handler share the connection: the
	// handler asks through a channel served between steps.
	status := make(chan chan uint64)
	pctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.serve(pctx, status)
	}()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		reply := make(chan uint64, 1)
		select {
		case status <- reply:
		case <-r.Context().Done():
			return
		}
		select {
		case pos := <-reply:
			app.WriteJSON(w, http.StatusOK, map[string]any{"name": p.cfg.Name, "schema": p.cfg.Schema, "checkpoint": pos})
		case <-r.Context().Done():
		}
	})
	err = s.Run(ctx, app.Tag(s.Config().ID, mux))
	stop()
	<-done
	return err
}

// serve is Run's loop, answering status requests between steps.
func (p *Projector) serve(ctx context.Context, status chan chan uint64) {
	tick := time.NewTimer(0)
	defer tick.Stop()
	backoff := p.cfg.Poll
	for {
		select {
		case <-ctx.Done():
			return
		case reply := <-status:
			pos, _ := p.Checkpoint(ctx)
			reply <- pos
			continue
		case <-tick.C:
		}
		n, err := p.Step(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			p.cfg.Logger.Warn("projection step failed", "name", p.cfg.Name, "err", err)
			tick.Reset(backoff)
			backoff = min(2*backoff, 10*time.Second)
		case n == 0:
			tick.Reset(p.cfg.Poll)
			backoff = p.cfg.Poll
		default:
			tick.Reset(0)
			backoff = p.cfg.Poll
		}
	}
}

// connect retries until PostgreSQL accepts a connection (it may start
// after the projector in a compose file), bounded by d.
func connect(ctx context.Context, url string, d time.Duration) (*pgx.Conn, error) {
	if url == "" {
		return nil, fmt.Errorf("no database URL (--database-url or DATABASE_URL)")
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	cfg.RuntimeParams["application_name"] = Name
	deadline := time.Now().Add(d)
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		db, err := pgx.ConnectConfig(cctx, cfg)
		cancel()
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return db, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
