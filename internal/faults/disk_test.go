package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plexushq/plexus/internal/enginetest"
	"github.com/plexushq/plexus/internal/httpxtest"
	"github.com/plexushq/plexus/internal/plexustest"
)

// writers publish queue messages and append events until stopped,
// remembering what was acknowledged and how the rest was answered.
type writers struct {
	p      *plexustest.Proc
	mu     sync.Mutex
	msgs   []string
	events []string
	codes  map[int]int // answers other than 201
	after  int         // acknowledged writes since mark
}

func (w *writers) run(ctx context.Context, id int, wg *sync.WaitGroup) {
	defer wg.Done()
	for i := 0; ctx.Err() == nil; i++ {
		mid := fmt.Sprintf("m-%d-%d", id, i)
		code, _, _ := w.p.CallContext(ctx, "POST", "/v1/queues/disk/messages",
			map[string]any{"id": mid, "payload": map[string]any{"pad": strings.Repeat("x", 2048)}})
		w.note(code, &w.msgs, mid)
		eid := fmt.Sprintf("e-%d-%d", id, i)
		code, _, _ = w.p.CallContext(ctx, "POST", "/v1/streams/disk-1/events",
			map[string]any{"events": []map[string]any{{"type": "disk.wrote", "id": eid, "data": map[string]any{"pad": strings.Repeat("y", 2048)}}}})
		w.note(code, &w.events, eid)
		if code != 201 {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func (w *writers) note(code int, acked *[]string, id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if code == 201 {
		*acked = append(*acked, id)
		w.after++
		return
	}
	w.codes[code]++
}

func (w *writers) mark() { w.mu.Lock(); w.after = 0; w.mu.Unlock() }

func (w *writers) since() int { w.mu.Lock(); defer w.mu.Unlock(); return w.after }

// TestDiskFull fills the disk under a running node: writes are answered
// 507 (storage full), the node reports not-ready with the reason, and once
// space is freed it accepts writes again by itself, with every write it
// acknowledged before, during and after still there.
func TestDiskFull(t *testing.T) {
	bin := plexustest.Binary(t)
	disk := enginetest.Tmpfs(t, 96<<20)
	p := plexustest.Up(t, bin, filepath.Join(disk, "data"), "--disk-reserve", "16MiB")
	if code, _, body := p.Call(t, "PUT", "/v1/queues/disk", map[string]any{"maxSize": 1000000}); code != 201 {
		t.Fatalf("create queue: %d %s", code, body)
	}
	w := &writers{p: p, codes: map[int]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go w.run(ctx, i, &wg)
	}
	defer func() { cancel(); wg.Wait() }()
	waitFor(t, 30*time.Second, "writes before the disk fills", func() bool { return w.since() >= 50 })

	filler := enginetest.Fill(t, disk)
	waitFor(t, 30*time.Second, "not-ready on a full disk", func() bool {
		code, _, _ := p.Call(t, "GET", "/ready", nil)
		return code == 503
	})
	code, h, body := p.Call(t, "POST", "/v1/queues/disk/messages", map[string]any{"payload": 1})
	if pr := httpxtest.Problem(t, http.StatusInsufficientStorage, h, body); code != 507 || !strings.HasSuffix(pr.Type, "storage-full") {
		t.Fatalf("publish on a full disk: %d %s", code, body)
	}
	code, _, body = p.Call(t, "GET", "/health", nil)
	var health struct {
		Status string `json:"status"`
		Engine struct {
			Writable    bool   `json:"writable"`
			StorageFull bool   `json:"storageFull"`
			Error       string `json:"error"`
		} `json:"engine"`
	}
	if err := json.Unmarshal(body, &health); err != nil || code != 200 || health.Status != "degraded" ||
		health.Engine.Writable || !health.Engine.StorageFull || !strings.Contains(health.Engine.Error, "storage full") {
		t.Fatalf("/health on a full disk: %d %s", code, body)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	p.WaitReady(t, 60*time.Second)
	w.mark()
	waitFor(t, 60*time.Second, "writes after space was freed", func() bool { return w.since() >= 20 })
	cancel()
	wg.Wait()

	w.mu.Lock()
	defer w.mu.Unlock()
	lostM, dupM := drainQueue(t, p, "disk", w.msgs)
	lostE, dupE := checkEvents(t, p, "disk-1", w.events)
	t.Logf("disk full: acknowledged %d messages and %d events; lost %d and %d; duplicated %d and %d; other answers %v",
		len(w.msgs), len(w.events), lostM, lostE, dupM, dupE, w.codes)
	if lostM+lostE > 0 || dupE > 0 {
		t.Fatalf("lost %d messages and %d events, %d events twice", lostM, lostE, dupE)
	}
	for code := range w.codes {
		if code != 507 && code != 503 && code != 0 { // 0: cut off by the test's end
			t.Fatalf("a write failed with %d, not a retryable 503/507: %v", code, w.codes)
		}
	}
}

// drainQueue receives and acks everything in queue and counts the
// acknowledged publishes never delivered, and deliveries of an id more than
// once.
func drainQueue(t *testing.T, p *plexustest.Proc, queue string, acked []string) (lost, dups int) {
	t.Helper()
	seen := map[string]int{}
	for empty := 0; empty < 2; {
		code, _, body := p.Call(t, "POST", "/v1/queues/"+queue+"/receive", map[string]any{"max": 100, "wait": "1s"})
		if code != 200 {
			t.Fatalf("receive: %d %s", code, body)
		}
		var out struct {
			Messages []struct{ ID, Receipt string }
		}
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			empty++
			continue
		}
		var rs []string
		for _, m := range out.Messages {
			seen[m.ID]++
			rs = append(rs, m.Receipt)
		}
		if code, _, body := p.Call(t, "POST", "/v1/queues/"+queue+"/ack", map[string]any{"receipts": rs}); code != 200 {
			t.Fatalf("ack: %d %s", code, body)
		}
	}
	return count(acked, seen)
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
