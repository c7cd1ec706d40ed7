package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/plexushq/plexus/internal/nodetest"

	"github.com/plexushq/plexus/registry"
	"github.com/plexushq/plexus/server"
)

// runCLI runs the plexus command in-process and returns what it printed.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	root := newRootCmd()
	root.SetOut(w)
	root.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	runErr := root.ExecuteContext(ctx)
	os.Stdout = old
	w.Close()
	out, _ := io.ReadAll(r)
	return string(out), runErr
}

// runCLIContext runs a long-lived command in-process until ctx ends; its
// output goes to the test log.
func runCLIContext(ctx context.Context, t *testing.T, args ...string) error {
	root := newRootCmd()
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

func TestServicesCommands(t *testing.T) {
	const token = "0123456789abcdef-cli-services"
	n := nodetest.Start(t, server.Config{Roles: []string{server.RoleControl}, AdminToken: token})
	common := []string{"--admin-url", "http://" + n.AdminAddr(), "--admin-token", token}
	cli := func(args ...string) (string, error) { return runCLI(t, append(args, common...)...) }

	out, err := cli("services", "register", "user-service", "u1", "http://127.0.0.1:3001", "--weight", "2",
		"--tag", "v2", "--meta", "team=core", "--ttl", "1m", "--check-interval", "2s", "-o", "json")
	var inst registry.Instance
	if err != nil || json.Unmarshal([]byte(out), &inst) != nil || inst.Weight != 2 || inst.Metadata["team"] != "core" ||
		inst.TTL != time.Minute || inst.Check.Interval != 2*time.Second || inst.Tags[0] != "v2" {
		t.Fatalf("register: %v %s", err, out)
	}
	if out, err = cli("services", "ls"); err != nil || !strings.Contains(out, "user-service  1") {
		t.Fatalf("ls: %v %q", err, out)
	}
	if out, err = cli("services", "show", "user-service"); err != nil || !strings.Contains(out, "http://127.0.0.1:3001") {
		t.Fatalf("show: %v %q", err, out)
	}
	if out, err = cli("services", "status", "user-service", "u1", "draining"); err != nil || !strings.Contains(out, "draining") {
		t.Fatalf("status: %v %q", err, out)
	}
	if _, err = cli("services", "register", "user-service", "u2", "ftp://x"); err == nil || !strings.Contains(err.Error(), "422") {
		t.Fatalf("bad register: %v", err)
	}
	if _, err = cli("services", "register", "user-service", "u2", "http://x:1", "--meta", "novalue"); err == nil {
		t.Fatal("--meta without = accepted")
	}
	compArgs := append(append([]string{"__complete", "services"}, common...), "show", "")
	if out, err = runCLI(t, compArgs...); err != nil || !strings.Contains(out, "user-service") {
		t.Fatalf("completion: %v %q", err, out)
	}
	if _, err = cli("services", "deregister", "user-service", "u1"); err != nil {
		t.Fatal(err)
	}
	if _, err = cli("services", "deregister", "user-service", "u1"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("second deregister: %v", err)
	}
}
