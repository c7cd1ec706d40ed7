package main

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/plexushq/plexus/internal/nodetest"
	"github.com/plexushq/plexus/registry"
	"github.com/plexushq/plexus/server"
)

// The CLI as a newcomer meets it (issue 12): each test below failed on the
// CLI before the change it names.

func cliNode(t *testing.T) (*server.Node, func(args ...string) (string, error)) {
	t.Helper()
	const token = "0123456789abcdef-cli-newcomer"
	n := nodetest.Start(t, server.Config{Roles: []string{server.RoleControl}, AdminToken: token})
	common := []string{"--admin-url", "http://" + n.AdminAddr(), "--admin-token", token}
	return n, func(args ...string) (string, error) { return runCLI(t, append(args, common...)...) }
}

// TestJSONArgumentRule: `events append` and `queue publish` read their
// data argument by one rule: JSON as is; anything else is refused with a
// hint, and --string sends the text as a JSON string.
func TestJSONArgumentRule(t *testing.T) {
	_, cli := cliNode(t)
	const hint = "data is not valid JSON (use --string to send text)"
	if _, err := cli("events", "append", "user-1", "user.created", "{name:Ada}"); err == nil || !strings.Contains(err.Error(), hint) {
		t.Errorf("events append with text: %v", err)
	}
	if _, err := cli("queue", "create", "q"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli("queue", "publish", "q", "{name:Ada}"); err == nil || !strings.Contains(err.Error(), hint) {
		t.Errorf("queue publish with text: %v", err)
	}
	if _, err := cli("events", "append", "user-1", "user.created", "{name:Ada}", "--string"); err != nil {
		t.Fatalf("events append --string: %v", err)
	}
	out, err := cli("events", "read", "user-1", "-o", "json")
	if err != nil || !strings.Contains(out, `"data": "{name:Ada}"`) {
		t.Errorf("events read after --string: %v %s", err, out)
	}
	if _, err := cli("queue", "publish", "q", "hello there", "--string"); err != nil {
		t.Fatalf("queue publish --string: %v", err)
	}
	if _, err := cli("queue", "publish", "q", `{"n":1}`); err != nil {
		t.Fatalf("queue publish JSON: %v", err)
	}
	out, err = cli("queue", "receive", "q", "--max", "2", "--wait", "2s", "--ack", "-o", "json")
	if err != nil || !strings.Contains(out, `"payload": "hello there"`) || !strings.Contains(out, `"n": 1`) {
		t.Errorf("receive: %v %s", err, out)
	}
}

// TestErrorsSayItOnce: an error answer is printed once, not wrapped in
// its own words again.
func TestErrorsSayItOnce(t *testing.T) {
	_, cli := cliNode(t)
	_, err := cli("events", "read", "nosuch")
	if err == nil || strings.Contains(err.Error(), "stream not found: stream not found") || !strings.Contains(err.Error(), `"nosuch"`) {
		t.Errorf("events read nosuch: %v", err)
	}
	_, err = cli("events", "append", "user-1", "bad type", "{}")
	if err == nil || strings.Count(err.Error(), "bad type") != 1 {
		t.Errorf("events append with a bad type: %v", err)
	}
}

// TestAdminURLHostPort: --admin-url accepts host:port without a scheme.
func TestAdminURLHostPort(t *testing.T) {
	n, _ := cliNode(t)
	out, err := runCLI(t, "services", "ls", "--admin-url", n.AdminAddr(), "--admin-token", n.Token())
	if err != nil || !strings.Contains(out, "NAME") {
		t.Fatalf("--admin-url %s: %v %q", n.AdminAddr(), err, out)
	}
	if _, err := runCLI(t, "services", "ls", "--admin-url", "ftp://x", "--admin-token", n.Token()); err == nil ||
		!strings.Contains(err.Error(), "--admin-url") {
		t.Errorf("--admin-url ftp://x: %v", err)
	}
}

// TestConnectionHints: no node at --admin-url, and a wrong token, each
// say what to do about it.
func TestConnectionHints(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	for _, args := range [][]string{{"services", "ls"}, {"events", "read", "x"}, {"services", "watch"}} {
		_, err := runCLI(t, append(args, "--admin-url", closed, "--admin-token", "t")...)
		if err == nil || !strings.Contains(err.Error(), "--admin-url") || !strings.Contains(err.Error(), "plexus up") {
			t.Errorf("%v with nothing listening: %v", args, err)
		}
	}
	n, _ := cliNode(t)
	for _, args := range [][]string{{"services", "ls"}, {"events", "read", "x"}, {"queue", "ls"}} {
		_, err := runCLI(t, append(args, "--admin-url", n.AdminAddr(), "--admin-token", "wrong-token-0123456789")...)
		if err == nil || !strings.Contains(err.Error(), "--admin-token") || !strings.Contains(err.Error(), "admin-token file") ||
			strings.Contains(err.Error(), "Authorization: Bearer") {
			t.Errorf("%v with a wrong token: %v", args, err)
		}
	}
}

// TestUnknownCommandFails: a mistyped command exits non-zero and suggests
// the right one, at every level.
func TestUnknownCommandFails(t *testing.T) {
	for _, tc := range []struct{ args []string }{
		{[]string{"services", "lss"}}, {[]string{"queue", "publsh"}}, {[]string{"servics", "ls"}},
	} {
		_, err := runCLI(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), "unknown command") || !strings.Contains(err.Error(), "Did you mean") {
			t.Errorf("plexus %v: %v", tc.args, err)
		}
	}
	if out, err := runCLI(t, "services"); err != nil || !strings.Contains(out, "Available Commands") {
		t.Errorf("plexus services alone prints its help: %v %q", err, out)
	}
}

// TestQueueAckNackExtend: a message received without --ack is settled
// with the receipt `queue receive` printed.
func TestQueueAckNackExtend(t *testing.T) {
	_, cli := cliNode(t)
	if _, err := cli("queue", "create", "work", "--retry-delay", "1ms", "--retry-attempts", "1"); err != nil {
		t.Fatal(err)
	}
	receive := func() string {
		t.Helper()
		out, err := cli("queue", "receive", "work", "--wait", "5s", "-o", "json")
		var got wireMsgs
		if err != nil || json.Unmarshal([]byte(out), &got) != nil || len(got.Messages) != 1 {
			t.Fatalf("receive: %v %s", err, out)
		}
		return got.Messages[0].Receipt
	}
	for _, p := range []string{`{"n":1}`, `{"n":2}`} {
		if _, err := cli("queue", "publish", "work", p); err != nil {
			t.Fatal(err)
		}
	}
	r := receive()
	out, err := cli("queue", "extend", "work", r, "-o", "json")
	var ext struct{ Receipts []string }
	if err != nil || json.Unmarshal([]byte(out), &ext) != nil || len(ext.Receipts) != 1 || ext.Receipts[0] == "" {
		t.Fatalf("extend: %v %s", err, out)
	}
	if out, err := cli("queue", "ack", "work", ext.Receipts[0]); err != nil || !strings.Contains(out, "1") {
		t.Fatalf("ack: %v %s", err, out)
	}
	if _, err := cli("queue", "nack", "work", receive(), "--error", "bad input"); err != nil {
		t.Fatalf("nack: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second) // dead-lettering follows the nack asynchronously
	for {
		out, err = cli("queue", "dead-letters", "work", "-o", "json")
		if err != nil || strings.Contains(out, "bad input") || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || !strings.Contains(out, "bad input") {
		t.Errorf("nacked message with one attempt is dead-lettered with its error: %v %s", err, out)
	}
	if _, err := cli("queue", "ack", "work", "forged"); err == nil {
		t.Error("ack with a forged receipt succeeded")
	}
}

// TestServicesHeartbeatAndKeepAlive: `services heartbeat` renews a lease;
// `services register --keep-alive` renews it until interrupted, then
// deregisters.
func TestServicesHeartbeatAndKeepAlive(t *testing.T) {
	n, cli := cliNode(t)
	if _, err := cli("services", "register", "web", "web-1", "http://127.0.0.1:3001", "--ttl", "1m"); err != nil {
		t.Fatal(err)
	}
	out, err := cli("services", "heartbeat", "web", "web-1")
	if err != nil || !strings.Contains(out, "EXPIRES") {
		t.Fatalf("heartbeat: %v %q", err, out)
	}
	if _, err := cli("services", "heartbeat", "web", "web-9"); err == nil || !strings.Contains(err.Error(), "register") {
		t.Errorf("heartbeat of an unknown instance: %v", err)
	}

	rc, err := registry.NewClient("http://"+n.AdminAddr(), n.Token(), registry.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runCLIContext(ctx, t, "services", "register", "web", "web-2", "http://127.0.0.1:3002", "--ttl", "1s",
			"--keep-alive", "--admin-url", n.AdminAddr(), "--admin-token", n.Token())
	}()
	// Heartbeats renew the lease: lastHeartbeat moves on from registeredAt,
	// twice (the lease is 1s; a heartbeat goes every third of it).
	seen := map[time.Time]bool{}
	deadline := time.Now().Add(20 * time.Second)
	for len(seen) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("lastHeartbeat never moved on 3 times: %v", seen)
		}
		if inst := instance(rc, "web", "web-2"); inst != nil {
			seen[inst.LastHeartbeat] = true
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("keep-alive ended with %v", err)
	}
	if instance(rc, "web", "web-2") != nil {
		t.Error("instance still registered after keep-alive ended")
	}
}

func instance(rc *registry.Client, service, id string) *registry.Instance {
	info, err := rc.Get(context.Background(), service)
	if err != nil {
		return nil
	}
	for _, in := range info.Instances {
		if in.ID == id {
			return in
		}
	}
	return nil
}
