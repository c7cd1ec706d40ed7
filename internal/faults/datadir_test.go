package faults

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plexushq/plexus/internal/plexustest"
)

// TestTwoNodesOnOneDataDir: a second node on a data dir in use — `plexus
// up`, or `plexus serve --roles gateway` without --nats (an easy slip) —
// used to start, and both acknowledged versions 1–3 of the same stream
// with different events; after a restart only one side's remained. Now the
// second exits at once, non-zero, naming the dir and the holder's pid, and
// every event the first acknowledged is there after a restart.
func TestTwoNodesOnOneDataDir(t *testing.T) {
	bin := plexustest.Binary(t)
	dir := filepath.Join(t.TempDir(), "data")
	a := plexustest.Up(t, bin, dir)
	acked := appendEvents(t, a, "user-1", 3)
	for _, args := range [][]string{
		{"up"},
		{"serve", "--roles", "gateway"},
	} {
		args = append(args, "--data-dir", dir, "--admin-addr", plexustest.FreeAddr(t),
			"--gateway-addr", plexustest.FreeAddr(t), "--admin-token", plexustest.Token)
		b := plexustest.Spawn(t, bin, args...)
		err, ended := b.Exited(15 * time.Second)
		var ee *exec.ExitError
		if !ended || !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Fatalf("%v on a data dir in use: ended %v, %v\n%s", args[:2], ended, err, b.Out)
		}
		abs, _ := filepath.Abs(dir)
		pid := strconv.Itoa(a.Cmd.Process.Pid)
		if out := b.Out.String(); !strings.Contains(out, abs) || !strings.Contains(out, "pid "+pid) {
			t.Fatalf("%v: message names neither %s nor pid %s:\n%s", args[:2], abs, pid, out)
		}
	}
	acked = append(acked, appendEvents(t, a, "user-1", 2)...) // the first node never noticed
	a.Stop()
	a = plexustest.Up(t, bin, dir)
	lost, dups := checkEvents(t, a, "user-1", acked)
	t.Logf("two nodes on one data dir: acknowledged %d, lost %d, duplicated %d", len(acked), lost, dups)
	if lost > 0 || dups > 0 {
		t.Fatalf("lost %d, duplicated %d", lost, dups)
	}
}

// TestBusyPortStartTouchesNoStore: a start that fails on a busy port used
// to open and recover the store first.
func TestBusyPortStartTouchesNoStore(t *testing.T) {
	bin := plexustest.Binary(t)
	a := plexustest.Up(t, bin, filepath.Join(t.TempDir(), "a"))
	dir := filepath.Join(t.TempDir(), "b")
	busy := strings.TrimPrefix(a.Admin, "http://")
	b := plexustest.Spawn(t, bin, "up", "--data-dir", dir, "--admin-addr", busy,
		"--gateway-addr", plexustest.FreeAddr(t), "--admin-token", plexustest.Token)
	err, ended := b.Exited(15 * time.Second)
	if !ended || err == nil || !strings.Contains(b.Out.String(), busy) {
		t.Fatalf("start on busy %s: ended %v, %v\n%s", busy, ended, err, b.Out)
	}
	if _, err := os.Stat(filepath.Join(dir, "jetstream")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the store was opened before the port was checked: %v", err)
	}
}

// appendEvents appends n events one by one and returns the ids of those
// acknowledged.
func appendEvents(t *testing.T, p *plexustest.Proc, stream string, n int) []string {
	t.Helper()
	var ids []string
	for range n {
		id := fmt.Sprintf("e-%d", time.Now().UnixNano())
		code, _, body := p.Call(t, "POST", "/v1/streams/"+stream+"/events",
			map[string]any{"events": []map[string]any{{"type": "user.changed", "id": id, "data": map[string]any{"id": id}}}})
		if code != 201 {
			t.Fatalf("append: %d %s", code, body)
		}
		ids = append(ids, id)
	}
	return ids
}

// checkEvents reads the stream and counts acknowledged events missing and
// events stored more than once.
func checkEvents(t *testing.T, p *plexustest.Proc, stream string, acked []string) (lost, dups int) {
	t.Helper()
	seen := map[string]int{}
	for from := 1; ; {
		code, _, body := p.Call(t, "GET", fmt.Sprintf("/v1/streams/%s/events?fromVersion=%d&limit=1000", stream, from), nil)
		if code != 200 {
			t.Fatalf("read %s: %d %s", stream, code, body)
		}
		var page struct {
			Events []struct {
				ID      string `json:"id"`
				Version int    `json:"version"`
			} `json:"events"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Events {
			seen[e.ID]++
			from = e.Version + 1
		}
		if len(page.Events) < 1000 {
			break
		}
	}
	return count(acked, seen)
}

// count returns how many acknowledged ids were never seen, and how many
// times ids were seen more than once.
func count(acked []string, seen map[string]int) (lost, dups int) {
	for _, id := range acked {
		if seen[id] == 0 {
			lost++
		}
	}
	for _, n := range seen {
		dups += max(n-1, 0)
	}
	return lost, dups
}
