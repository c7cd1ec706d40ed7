package clustertest_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/plexushq/plexus/internal/clustertest"
)

// TestKillLeaderElectsAnother: the harness really clusters (an R3 stream
// keeps every acknowledged message across the loss of its leader) and a
// killed server is gone for its peers until it is restarted.
func TestKillLeaderElectsAnother(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{User: "plexus", Password: "secret-secret"})
	nc, err := nats.Connect(c.URLs()[0]+","+c.URLs()[1]+","+c.URLs()[2],
		nats.UserInfo("plexus", "secret-secret"), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	acked := 0
	publish := func() error {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		defer pcancel()
		_, err := js.Publish(pctx, "t.x", []byte("x"))
		if err == nil {
			acked++
		}
		return err
	}
	for range 10 {
		if err := publish(); err != nil {
			t.Fatal(err)
		}
	}
	leader := c.WaitStreamLeader("T", 10*time.Second)
	killed := time.Now()
	c.Kill(leader)
	if _, err := c.Connect(leader); err == nil {
		t.Fatal("a killed server still takes connections")
	}
	next := c.WaitStreamLeader("T", 60*time.Second)
	t.Logf("stream leader %d killed; %d leads after %s", leader, next, time.Since(killed).Round(time.Millisecond))
	if next == leader {
		t.Fatal("the killed server leads")
	}
	for publish() != nil {
		if ctx.Err() != nil {
			t.Fatal("no publish succeeded after the failover")
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.Restart(leader)
	c.WaitReady(60 * time.Second)
	s, err := js.Stream(ctx, "T")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().State.Msgs; got != uint64(acked) {
		t.Fatalf("%d acknowledged, %d stored", acked, got)
	}
	if n := len(s.CachedInfo().Cluster.Replicas); n != 2 {
		t.Fatalf("%d replicas besides the leader, want 2", n)
	}
}
