package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/plexushq/plexus/internal/nodetest"

	"github.com/plexushq/plexus/server"
)

func TestQueueCommands(t *testing.T) {
	n := nodetest.Start(t, server.Config{AdminToken: "queue-cli-token-0123456789", Roles: []string{server.RoleControl}})
	g := []string{"--admin-url", "http://" + n.AdminAddr(), "--admin-token", n.Token()}
	q := func(args ...string) string {
		t.Helper()
		out, err := runCLI(t, append(append([]string{"queue"}, args...), g...)...)
		if err != nil {
			t.Fatalf("queue %v: %v", args, err)
		}
		return out
	}
	if out := q("create", "jobs", "--max-size", "50", "--retry-attempts", "1"); !strings.Contains(out, "jobs") {
		t.Fatalf("create: %s", out)
	}
	q("publish", "jobs", `{"n":1}`, "--priority", "3", "--id", "j-1", "--header", "X-A=b")
	q("publish", "jobs", "plain text", "--string")
	if out := q("ls"); !strings.Contains(out, "jobs ") || !strings.Contains(out, "jobs.dlq") {
		t.Fatalf("ls: %s", out)
	}
	var info struct {
		QueueSize int `json:"queueSize"`
		Config    struct {
			MaxSize int `json:"maxSize"`
		} `json:"config"`
	}
	if err := json.Unmarshal([]byte(q("stats", "jobs", "-o", "json")), &info); err != nil || info.QueueSize != 2 || info.Config.MaxSize != 50 {
		t.Fatalf("stats: %+v %v", info, err)
	}
	out := q("receive", "jobs", "--max", "1", "--wait", "1s", "-o", "json")
	var got struct {
		Messages []struct {
			ID, Receipt string
			Payload     json.RawMessage
		}
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got.Messages) != 1 || got.Messages[0].ID != "j-1" {
		t.Fatalf("receive: %s %v", out, err)
	}
	if out := q("receive", "jobs", "--max", "1", "--wait", "1s", "--ack"); !strings.Contains(out, `"plain text"`) {
		t.Fatalf("receive --ack: %s", out)
	}
	if out := q("dead-letters", "jobs"); !strings.Contains(out, "ID") {
		t.Fatalf("dead-letters: %s", out)
	}
	if out := q("redrive", "jobs"); !strings.Contains(out, "0") {
		t.Fatalf("redrive: %s", out)
	}
	if _, err := runCLI(t, append([]string{"queue", "stats", "nope"}, g...)...); err == nil || !strings.Contains(err.Error(), "Queue not found: nope") {
		t.Fatalf("unknown queue: %v", err)
	}
	if _, err := runCLI(t, append([]string{"queue", "publish", "jobs", "1", "--priority", "12"}, g...)...); err == nil || !strings.Contains(err.Error(), "422") {
		t.Fatalf("bad priority: %v", err)
	}
	q("delete", "jobs")
}
