package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plexushq/plexus/internal/nodetest"

	"github.com/plexushq/plexus/eventstore"
	"github.com/plexushq/plexus/server"
)

func TestEventsCommands(t *testing.T) {
	const token = "0123456789abcdef-cli-events"
	n := nodetest.Start(t, server.Config{Roles: []string{server.RoleControl}, AdminToken: token})
	common := []string{"--admin-url", "http://" + n.AdminAddr(), "--admin-token", token}
	cli := func(args ...string) (string, error) { return runCLI(t, append(args, common...)...) }

	out, err := cli("events", "append", "user-42", "user.created", `{"username":"ann"}`, "--expected-version", "0", "-o", "json")
	var res eventstore.AppendResult
	if err != nil || json.Unmarshal([]byte(out), &res) != nil || res.Version != 1 || res.Position == 0 {
		t.Fatalf("append: %v %s", err, out)
	}
	_, err = cli("events", "append", "user-42", "user.created", `{}`, "--expected-version", "0")
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 3 || !strings.Contains(ee.msg, "version 1") {
		t.Fatalf("conflict: %v", err)
	}
	batch := filepath.Join(t.TempDir(), "batch.json")
	_ = os.WriteFile(batch, []byte(`[{"type":"user.login","data":{}},{"type":"user.logout"}]`), 0o600)
	if out, err = cli("events", "append", "user-42", "--file", batch, "--expected-version", "1"); err != nil || !strings.Contains(out, "user-42  3") {
		t.Fatalf("batch append: %v %q", err, out)
	}
	out, err = cli("events", "read", "user-42", "--from-version", "2", "-o", "json")
	var page struct{ Events []eventstore.Envelope }
	if err != nil || json.Unmarshal([]byte(out), &page) != nil || len(page.Events) != 2 || page.Events[0].Type != "user.login" {
		t.Fatalf("read stream: %v %s", err, out)
	}
	if out, err = cli("events", "read", "--types", "user.created,user.logout", "--category", "user"); err != nil ||
		!strings.Contains(out, "user.created") || !strings.Contains(out, "user.logout") || strings.Contains(out, "user.login") {
		t.Fatalf("read all: %v %q", err, out)
	}
	if _, err = cli("events", "read", "user-404"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("unknown stream: %v", err)
	}
	if _, err = cli("events", "append", "user-42", "bad type"); err == nil {
		t.Fatal("bad type accepted")
	}
}
