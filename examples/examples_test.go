package examples_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/plexushq/plexus/internal/nodetest"

	"github.com/plexushq/plexus/eventstore"
	"github.com/plexushq/plexus/examples/internal/app"
	"github.com/plexushq/plexus/examples/internal/notify"
	"github.com/plexushq/plexus/examples/internal/orders"
	"github.com/plexushq/plexus/examples/internal/users"
	"github.com/plexushq/plexus/server"
)

const token = "examples-test-token-0123456789abcdef"

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func startNode(t *testing.T) *server.Node {
	t.Helper()
	return nodetest.Start(t, server.Config{AdminToken: token})
}

// runService runs one example's Run in a goroutine, returns its URL once it
// serves and is registered, and stops it (as SIGTERM would) at cleanup.
func runService(t *testing.T, admin, id string, run func(context.Context, app.Config) error) string {
	t.Helper()
	ready := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	cfg := app.Config{Addr: "127.0.0.1:0", AdminURL: admin, Token: token, ID: id, DrainDelay: time.Millisecond,
		Logger: quiet, OnReady: func(u string) { ready <- u }}
	go func() { done <- run(ctx, cfg) }()
	var url string
	select {
	case url = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("%s: %v", id, err)
	case <-time.After(15 * time.Second):
		cancel()
		t.Fatalf("%s never became ready", id)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s stopped with %v", id, err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("%s did not stop", id)
		}
	})
	return url
}

func do(t *testing.T, method, url string, in, out any) int {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, body)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, url, err, b)
		}
	}
	return resp.StatusCode
}

// eventually polls cond every 25ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// TestOrderFlowEndToEnd: a real node and the three example services
// in-process (two user-service replicas). A user is created through the
// gateway (user.created lands in the event store), an order is posted
// through the gateway to order-service, which checks the user with the
// service client and publishes to the notifications queue, and
// notification-service consumes it.
func TestOrderFlowEndToEnd(t *testing.T) {
	n := startNode(t)
	admin := "http://" + n.AdminAddr()
	gw := "http://" + n.GatewayAddr()

	user1 := runService(t, admin, "user-service-1", users.Run)
	user2 := runService(t, admin, "user-service-2", users.Run)
	runService(t, admin, "order-service-1", orders.Run)
	runService(t, admin, "notification-service-1", notify.Run)
	for _, svc := range []string{users.Name, orders.Name, notify.Name} {
		eventually(t, 10*time.Second, "gateway routes "+svc, func() bool {
			return do(t, "GET", gw+"/api/"+svc+"/health", nil, nil) == http.StatusOK
		})
	}

	var u users.User
	if code := do(t, "POST", gw+"/api/user-service/users", map[string]string{"name": "Ada", "email": "ada@example.com"}, &u); code != http.StatusCreated {
		t.Fatalf("create user: HTTP %d", code)
	}
	// Both replicas answer: the one that did not create the user rebuilds
	// it from its event stream.
	for _, base := range []string{user1, user2, gw + "/api/user-service"} {
		var got users.User
		if code := do(t, "GET", base+"/users/"+u.ID, nil, &got); code != http.StatusOK || got.Email != u.Email {
			t.Fatalf("GET %s/users/%s: HTTP %d %+v", base, u.ID, code, got)
		}
	}
	if code := do(t, "GET", user1+"/users/nobody", nil, nil); code != http.StatusNotFound {
		t.Fatalf("unknown user: HTTP %d, want 404", code)
	}

	ec := eventstore.NewClient(admin, token, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	evs, err := ec.ReadStream(ctx, users.StreamOf(u.ID), 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Type != "user.created" {
		t.Fatalf("stream %s: %+v", users.StreamOf(u.ID), evs)
	}

	if code := do(t, "POST", gw+"/api/order-service/orders", map[string]any{"userId": "nobody", "item": "book"}, nil); code != http.StatusUnprocessableEntity {
		t.Fatalf("order for an unknown user: HTTP %d, want 422", code)
	}
	var ord orders.Order
	if code := do(t, "POST", gw+"/api/order-service/orders", map[string]any{"userId": u.ID, "item": "book", "quantity": 2}, &ord); code != http.StatusCreated {
		t.Fatalf("create order: HTTP %d", code)
	}
	if ord.UserID != u.ID || ord.Quantity != 2 {
		t.Fatalf("order %+v", ord)
	}

	var sent notify.Sent
	eventually(t, 10*time.Second, "notification sent", func() bool {
		return do(t, "GET", gw+"/api/notification-service/sent", nil, &sent) == http.StatusOK && sent.Sent >= 1
	})
	if sent.Sent != 1 || len(sent.Last) != 1 || sent.Last[0] != "order-"+ord.ID {
		t.Fatalf("sent %+v, want exactly order-%s", sent, ord.ID)
	}
}
