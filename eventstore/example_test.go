package eventstore_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/eventstore"
)

// A counter aggregate: its state is rebuilt from its events, saves expect
// the loaded version.
func ExampleRepository() {
	dir, _ := os.MkdirTemp("", "eventstore-example-")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	eng, err := engine.Start(ctx, engine.Config{DataDir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		panic(err)
	}
	defer func() { _ = eng.Stop(ctx) }()
	store := eventstore.New(eng, eventstore.Config{})
	if err := store.Start(ctx); err != nil {
		panic(err)
	}
	defer func() { _ = store.Stop(ctx) }()

	repo := eventstore.NewRepository(store, func(n int, e eventstore.Envelope) (int, error) {
		var by int
		err := e.Decode(&by)
		return n + by, err
	}, eventstore.RepositoryConfig{SnapshotEvery: 100})

	c, _ := repo.Load(ctx, "counter-1")
	_ = c.Raise("counter.added", 2)
	_ = c.Raise("counter.added", 3)
	res, _ := repo.Save(ctx, c)
	fmt.Println("saved version", res.Version)

	stale, _ := repo.Load(ctx, "counter-1")
	fresh, _ := repo.Load(ctx, "counter-1")
	_ = fresh.Raise("counter.added", 10)
	_, _ = repo.Save(ctx, fresh)
	_ = stale.Raise("counter.added", 1)
	_, err = repo.Save(ctx, stale)
	fmt.Println(err)

	c, _ = repo.Load(ctx, "counter-1")
	fmt.Println("state", c.State, "version", c.Version)
	// Output:
	// saved version 2
	// stream "counter-1": expected version 2, current version 3
	// state 15 version 3
}
