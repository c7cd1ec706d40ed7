package examples_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/plexushq/plexus/eventstore"
	"github.com/plexushq/plexus/examples/internal/app"
	"github.com/plexushq/plexus/examples/internal/readmodel"
	"github.com/plexushq/plexus/examples/internal/saga"
	"github.com/plexushq/plexus/internal/pgtest"
)

// childEnv names the role of a re-executed test binary.
const childEnv = "EXAMPLES_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "order-projector" {
		os.Exit(projectorChild())
	}
	os.Exit(m.Run())
}

// projectorChild runs the order-projector as the command does, configured
// by the environment, until SIGTERM (or SIGKILL).
func projectorChild() int {
	batch, _ := strconv.Atoi(os.Getenv("BATCH"))
	cfg := app.Config{Addr: "127.0.0.1:0", AdminURL: os.Getenv("PLEXUS_ADMIN_URL"), Token: os.Getenv("PLEXUS_ADMIN_TOKEN"),
		ID: "order-projector-child", DrainDelay: time.Millisecond}
	err := readmodel.Run(context.Background(), cfg, readmodel.Options{DatabaseURL: os.Getenv("DATABASE_URL"),
		Config: readmodel.Config{Schema: os.Getenv("SCHEMA"), Batch: batch, Poll: 20 * time.Millisecond}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "order-projector child:", err)
		return 1
	}
	return 0
}

// startProjector runs the projector in a child process; its output goes
// to a file shown when the test fails.
func startProjector(t *testing.T, admin, dbURL, schema string, batch int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=order-projector", "PLEXUS_ADMIN_URL="+admin, "PLEXUS_ADMIN_TOKEN="+token,
		"DATABASE_URL="+dbURL, "SCHEMA="+schema, "BATCH="+strconv.Itoa(batch))
	logPath := filepath.Join(t.TempDir(), "projector.log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		f.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("projector log:\n%s", b)
		}
	})
	return cmd
}

// appendOrders appends the events of n orders as the saga writes them
// (order, stock and account streams; every fourth order's payment fails
// and is compensated) and answers the last global position.
func appendOrders(t *testing.T, ec *eventstore.Client, from, n int) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var last uint64
	add := func(stream string, evs ...eventstore.Event) {
		res, err := ec.Append(ctx, stream, eventstore.AnyVersion, evs...)
		if err != nil {
			t.Fatal(err)
		}
		last = res.Position
	}
	for i := from; i < from+n; i++ {
		id, user, sku := fmt.Sprintf("o%04d", i), fmt.Sprintf("u%d", i%7), fmt.Sprintf("sku%d", i%5)
		if i < 7 {
			add(saga.AccountStream(user), saga.NewEvent(saga.AccountCredited, "", "", saga.Data{UserID: user, Amount: 1_000_000}))
		}
		if i < 5 {
			add(saga.StockStream(sku), saga.NewEvent(saga.StockAdded, "", "", saga.Data{SKU: sku, Quantity: 10_000, Price: 100 + int64(i)}))
		}
		d := saga.Data{OrderID: id, UserID: user, SKU: sku, Quantity: 1 + i%3, Amount: int64(100 * (1 + i%3))}
		ev := func(typ string, d saga.Data) eventstore.Event { return saga.NewEvent(typ, id, id, d) }
		add(saga.OrderStream(id), ev(saga.OrderPlaced, d))
		add(saga.StockStream(sku), ev(saga.StockReserved, d))
		add(saga.OrderStream(id), ev(saga.OrderStockReserved, d))
		if i%4 == 3 {
			failed := d
			failed.Reason = "insufficient funds"
			add(saga.OrderStream(id), ev(saga.OrderPaymentFailed, failed))
			add(saga.StockStream(sku), ev(saga.StockReleased, d))
			add(saga.OrderStream(id), ev(saga.OrderStockReleased, d), ev(saga.OrderCancelled, failed))
			continue
		}
		add(saga.AccountStream(user), ev(saga.AccountCharged, d))
		add(saga.OrderStream(id), ev(saga.OrderPaymentTaken, d), ev(saga.OrderConfirmed, d))
	}
	return last
}

func checkpoint(t *testing.T, db *pgx.Conn, schema string) uint64 {
	t.Helper()
	var pos uint64
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.QueryRow(ctx, `SELECT position FROM `+schema+`.checkpoints WHERE name = 'order-projector'`).Scan(&pos); err != nil {
		return 0 // not created yet
	}
	return pos
}

func dump(t *testing.T, db *pgx.Conn, schema string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := readmodel.Dump(ctx, db, schema)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestReadModelEqualsReplayAfterKill: the projector runs as its own
// process and is killed with SIGKILL in the middle of a page — after it
// wrote the page's rows, while its checkpoint update waits on a row lock
// the test holds. Nothing of that page remains; the restarted projector
// goes on from the checkpoint, and its read model equals a replay of the
// whole log from position 0 into another schema, and a rebuild of its own.
func TestReadModelEqualsReplayAfterKill(t *testing.T) {
	n := startNode(t)
	admin := "http://" + n.AdminAddr()
	ec := eventstore.NewClient(admin, token, nil)
	dbURL := pgtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())

	mid := appendOrders(t, ec, 0, 40)
	child := startProjector(t, admin, dbURL, "live", 25)
	eventually(t, 30*time.Second, "the projector applies the first part of the log", func() bool {
		return checkpoint(t, db, "live") == mid
	})

	// Hold the checkpoint row, append more, and wait until the projector
	// has written a page and waits for the row.
	lock, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Exec(ctx, `SELECT position FROM live.checkpoints WHERE name = 'order-projector' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	end := appendOrders(t, ec, 40, 40)
	other, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(context.Background())
	eventually(t, 30*time.Second, "the projector blocks on its checkpoint mid-page", func() bool {
		var waiting int
		err := other.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE application_name = 'order-projector' AND wait_event_type = 'Lock' AND query LIKE 'UPDATE live.checkpoints%'`).Scan(&waiting)
		return err == nil && waiting == 1
	})
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if cp := checkpoint(t, db, "live"); cp != mid {
		t.Fatalf("after the kill the checkpoint is %d, want %d (the page in flight rolled back)", cp, mid)
	}
	var rows int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM live.orders`).Scan(&rows); err != nil || rows != 40 {
		t.Fatalf("after the kill: %d orders in the read model (%v), want the 40 of the first part", rows, err)
	}

	child = startProjector(t, admin, dbURL, "live", 25)
	eventually(t, 60*time.Second, "the restarted projector catches up", func() bool {
		return checkpoint(t, db, "live") == end
	})
	if err := child.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := child.Wait(); err != nil {
		t.Fatalf("projector stopped with %v", err)
	}

	replay, err := readmodel.New(ctx, ec, db, readmodel.Config{Schema: "replay", Batch: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := replay.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	live := dump(t, db, "live")
	if want := dump(t, db, "replay"); live != want {
		t.Fatalf("read model after the kill differs from a replay from 0:\n--- live\n%s\n--- replay\n%s", live, want)
	}
	if err := db.QueryRow(ctx, `SELECT count(*) FROM live.orders`).Scan(&rows); err != nil || rows != 80 {
		t.Fatalf("%d orders (%v), want 80", rows, err)
	}

	// Rebuild on demand: the same model again from position 0.
	p, err := readmodel.New(ctx, ec, db, readmodel.Config{Schema: "live"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	if cp := checkpoint(t, db, "live"); cp != 0 {
		t.Fatalf("checkpoint after Rebuild: %d", cp)
	}
	if _, err := p.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, db, "live"); got != live {
		t.Fatalf("rebuilt read model differs:\n%s\nwant\n%s", got, live)
	}
}
