// Command user-aggregate is the seed's UserAggregate (docs/examples.md) written with
// Plexus's event store: users are event-sourced aggregates (create, update,
// delete, login, logout) saved with optimistic concurrency and snapshots,
// and a projection keeps a users-by-email directory. It runs an embedded
// engine in a temporary directory (or --data-dir) and prints what happens.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/eventstore"
)

func main() {
	dataDir := flag.String("data-dir", "", "engine data directory (default: a temporary one)")
	flag.Parse()
	if err := run(context.Background(), *dataDir, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "user-aggregate:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dataDir string, out io.Writer) error {
	if dataDir == "" {
		dir, err := os.MkdirTemp("", "user-aggregate-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		dataDir = dir
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng, err := engine.Start(ctx, engine.Config{DataDir: dataDir, Logger: quiet})
	if err != nil {
		return err
	}
	defer func() { _ = eng.Stop(context.Background()) }()
	store := eventstore.New(eng, eventstore.Config{Logger: quiet})
	if err := store.Start(ctx); err != nil {
		return err
	}
	defer func() { _ = store.Stop(context.Background()) }()

	dir := eventstore.NewProjection(store, Directory{}, applyDirectory, eventstore.ProjectionOptions{Category: "user"})
	if err := dir.Start(ctx); err != nil {
		return err
	}
	defer func() { _ = dir.Stop(context.Background()) }()

	users := NewUsers(store, 100)
	return demo(ctx, store, users, dir, out)
}

func demo(ctx context.Context, store *eventstore.Store, users *Users, dir *eventstore.Projection[Directory], out io.Writer) error {
	id := fmt.Sprintf("%d", time.Now().UnixNano()%1_000_000)
	if _, err := users.Create(ctx, id, "ann", "ann@example.com"); err != nil {
		return err
	}
	if _, err := users.Create(ctx, id, "ann", "ann@example.com"); !errors.Is(err, ErrExists) {
		return fmt.Errorf("second create: %v", err)
	}
	email := "ann@example.org"
	if _, err := users.Update(ctx, id, nil, &email); err != nil {
		return err
	}
	if _, err := users.Login(ctx, id, time.Now()); err != nil {
		return err
	}
	a, err := users.Logout(ctx, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "user %s at version %d: %+v\n", id, a.Version, a.State)

	// Two writers load the same version; the second save conflicts.
	x, _ := users.Get(ctx, id)
	y, _ := users.Get(ctx, id)
	_ = x.Raise(UserLogin, loggedIn{At: time.Now()})
	_ = y.Raise(UserLogin, loggedIn{At: time.Now()})
	if _, err := users.repo.Save(ctx, x); err != nil {
		return err
	}
	_, err = users.repo.Save(ctx, y)
	var ce *eventstore.ConflictError
	if !errors.As(err, &ce) {
		return fmt.Errorf("concurrent save: %v", err)
	}
	fmt.Fprintf(out, "concurrent save refused: %v\n", ce)

	a, err = users.Delete(ctx, id)
	if err != nil {
		return err
	}
	if _, err := users.Login(ctx, id, time.Now()); !errors.Is(err, ErrDeleted) {
		return fmt.Errorf("login after delete: %v", err)
	}
	events, err := store.ReadStream(ctx, streamOf(id), 1, 100)
	if err != nil {
		return err
	}
	for _, e := range events {
		fmt.Fprintf(out, "  v%d %-13s %s\n", e.Version, e.Type, e.Data)
	}
	if err := dir.WaitFor(ctx, events[len(events)-1].Position); err != nil {
		return err
	}
	dir.Read(func(d *Directory) { fmt.Fprintf(out, "directory after delete has %d entries\n", len(*d)) })
	fmt.Fprintf(out, "deleted at version %d\n", a.Version)
	return nil
}
