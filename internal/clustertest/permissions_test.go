package clustertest_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/internal/clustertest"
	"github.com/plexushq/plexus/internal/nodetest"
	"github.com/plexushq/plexus/queue"
	plexserver "github.com/plexushq/plexus/server"
)

// The permissions docs/operations.md ("Running on a cluster") gives a
// Plexus node's NATS user and a user that only publishes with the Go
// queue SDK. The tests below run with exactly these.
var (
	nodePublish = []string{
		"$JS.API.>", "$JS.ACK.>", "$JS.FC.>", "plexus.>",
		"$KV.plexus_registry.>", "$KV.plexus_queues.>", "$KV.plexus_snapshots.>",
		"$KV.plexus_events_parked.>", "$KV.plexus_secrets.>",
	}
	nodeSubscribe = []string{"_INBOX.>", "plexus.>"}
	// secretsDeny keeps the secrets bucket (the queue receipt key) from a
	// user: its messages, its stream and its consumers.
	secretsDeny = []string{
		"$KV.plexus_secrets.>",
		"$JS.API.STREAM.*.KV_plexus_secrets", "$JS.API.STREAM.MSG.GET.KV_plexus_secrets",
		"$JS.API.DIRECT.GET.KV_plexus_secrets", "$JS.API.DIRECT.GET.KV_plexus_secrets.>",
		"$JS.API.CONSUMER.*.KV_plexus_secrets", "$JS.API.CONSUMER.*.KV_plexus_secrets.>",
	}
)

func permissionedCluster(t *testing.T) *clustertest.Cluster {
	return clustertest.Start(t, clustertest.Options{Size: 1,
		ClientOptions: []nats.Option{nats.UserInfo("plexus", "node-password-0123")},
		Configure: func(_ int, o *server.Options) {
			o.Users = []*server.User{
				{Username: "plexus", Password: "node-password-0123", Permissions: &server.Permissions{
					Publish:   &server.SubjectPermission{Allow: nodePublish},
					Subscribe: &server.SubjectPermission{Allow: nodeSubscribe},
				}},
				{Username: "publisher", Password: "publisher-password", Permissions: &server.Permissions{
					Publish:   &server.SubjectPermission{Allow: nodePublish, Deny: secretsDeny},
					Subscribe: &server.SubjectPermission{Allow: nodeSubscribe, Deny: secretsDeny},
				}},
			}
		}})
}

// TestNodeRunsWithTheDocumentedPermissions: a node whose NATS user has only
// the documented permissions registers, routes, queues and stores events.
func TestNodeRunsWithTheDocumentedPermissions(t *testing.T) {
	c := permissionedCluster(t)
	n := nodetest.Start(t, plexserver.Config{AdminToken: token, NATS: c.URLs(),
		NATSAuth: plexserver.NATSAuth{User: "plexus", Password: "node-password-0123"}})
	backend := backendServer(t)
	register(t, n, "web", "w1", backend)
	nodetest.Eventually(t, "the gateway to route", func() bool {
		resp, err := http.Get("http://" + n.GatewayAddr() + "/api/web/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	steps := []struct{ method, path, body string }{
		{http.MethodPut, "/v1/queues/jobs", `{}`},
		{http.MethodPost, "/v1/queues/jobs/messages", `{"payload":{"n":1},"id":"m1","priority":3}`},
		{http.MethodPost, "/v1/streams/order-1/events", `{"expectedVersion":0,"events":[{"type":"created","data":{}}]}`},
		{http.MethodGet, "/v1/streams/order-1/events", ""},
		{http.MethodGet, "/v1/events?fromPosition=1", ""},
	}
	for _, s := range steps {
		if code, p := adminDo(t, n, s.method, s.path, s.body); code/100 != 2 {
			t.Fatalf("%s %s: %d %v", s.method, s.path, code, p)
		}
	}
	code, p := adminDo(t, n, http.MethodPost, "/v1/queues/jobs/receive", `{"max":1}`)
	msgs, _ := p["messages"].([]any)
	if code != http.StatusOK || len(msgs) != 1 {
		t.Fatalf("receive: %d %v", code, p)
	}
	receipt := msgs[0].(map[string]any)["receipt"].(string)
	if code, p := adminDo(t, n, http.MethodPost, "/v1/queues/jobs/ack", `{"receipts":["`+receipt+`"]}`); code/100 != 2 {
		t.Fatalf("ack: %d %v", code, p)
	}
}

// TestPublisherCannotReadTheReceiptKey: the receipt key lives in a bucket
// of its own. A user whose permissions exclude it publishes with the Go
// SDK, and cannot read the key by any of the engine's ways in (before, it
// sat in the options bucket every publisher reads).
func TestPublisherCannotReadTheReceiptKey(t *testing.T) {
	c := permissionedCluster(t)
	n := nodetest.Start(t, plexserver.Config{AdminToken: token, NATS: c.URLs(),
		NATSAuth: plexserver.NATSAuth{User: "plexus", Password: "node-password-0123"}})
	if code, _ := adminDo(t, n, http.MethodPut, "/v1/queues/jobs", `{}`); code/100 != 2 {
		t.Fatal("create queue")
	}
	// A receive makes the node load (and create) the receipt key.
	adminDo(t, n, http.MethodPost, "/v1/queues/jobs/receive", `{"max":1,"wait":"0s"}`)
	nc, err := nats.Connect(c.URL(0), nats.UserInfo("publisher", "publisher-password"), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	qc, err := queue.New(ctx, js, queue.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer qc.Close()
	if _, err := qc.Publish(ctx, "jobs", queue.Message{Payload: []byte(`{"from":"publisher"}`)}); err != nil {
		t.Fatalf("publish as publisher: %v", err)
	}
	short := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, time.Second) }
	sctx, scancel := short()
	_, err = js.KeyValue(sctx, engine.BucketSecrets)
	scancel()
	if err == nil {
		t.Fatal("the publisher opened the secrets bucket")
	}
	sctx, scancel = short()
	_, err = nc.RequestWithContext(sctx, "$JS.API.DIRECT.GET.KV_"+engine.BucketSecrets+".$KV."+engine.BucketSecrets+".queue-receipt", nil)
	scancel()
	if err == nil {
		t.Fatal("the publisher read the key with a direct get")
	}
	sctx, scancel = short()
	_, err = nc.RequestWithContext(sctx, "$JS.API.STREAM.MSG.GET.KV_"+engine.BucketSecrets, []byte(`{"last_by_subj":"$KV.plexus_secrets.queue-receipt"}`))
	scancel()
	if err == nil {
		t.Fatal("the publisher read the key with a message get")
	}
	sctx, scancel = short()
	_, err = js.OrderedConsumer(sctx, "KV_"+engine.BucketSecrets, jetstream.OrderedConsumerConfig{})
	scancel()
	if err == nil {
		t.Fatal("the publisher made a consumer on the secrets bucket")
	}
	// And the options bucket it may read holds no copy.
	kv, err := js.KeyValue(ctx, engine.BucketQueues)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := kv.Keys(ctx)
	for _, k := range keys {
		if strings.Contains(k, "secret") {
			t.Fatalf("the options bucket holds %q", k)
		}
	}
	if _, err := kv.Get(ctx, "_secret.receipt"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("legacy key: %v", err)
	}
}

func backendServer(t *testing.T) string {
	t.Helper()
	srv := newOK(t)
	return srv
}
