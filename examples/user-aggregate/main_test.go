package main

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/plexushq/plexus/eventstore"
	"github.com/plexushq/plexus/internal/enginetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDemoRuns(t *testing.T) {
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, t.TempDir(), &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"user.created", "user.updated", "user.login", "user.logout", "user.deleted",
		"concurrent save refused", "directory after delete has 0 entries"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestUserAggregateWithSnapshotsMatchesReplay(t *testing.T) {
	eng := enginetest.Start(t)
	store := eventstore.New(eng, eventstore.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := store.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = store.Stop(context.Background()) }()
	users := NewUsers(store, 5)
	if _, err := users.Create(ctx, "42", "bob", "bob@example.com"); err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		if _, err := users.Login(ctx, "42", time.Unix(int64(i), 0)); err != nil {
			t.Fatal(err)
		}
		if _, err := users.Logout(ctx, "42"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := users.Update(ctx, "42", nil, nil); !errors.Is(err, ErrNoChange) {
		t.Fatalf("empty update: %v", err)
	}
	got, err := users.Get(ctx, "42")
	if err != nil {
		t.Fatal(err)
	}
	snap, err := store.LoadSnapshot(ctx, "user-42")
	if err != nil || snap.Version != 25 {
		t.Fatalf("snapshot %+v %v", snap, err)
	}
	events, _ := store.ReadStream(ctx, "user-42", 1, 100)
	var replay User
	for _, e := range events {
		replay, _ = applyUser(replay, e)
	}
	if !reflect.DeepEqual(got.State, replay) || got.State.Logins != 12 || got.Version != 25 {
		t.Fatalf("loaded %+v v%d, replay %+v", got.State, got.Version, replay)
	}
	if _, err := users.Get(ctx, "nobody"); !errors.Is(err, ErrNoUser) {
		t.Fatalf("unknown user: %v", err)
	}
}
