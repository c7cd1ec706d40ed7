package faults

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/plexushq/plexus/internal/plexustest"
)

type delivery struct {
	ID, Receipt string
	Attempts    int
}

func receiveAll(t *testing.T, p *plexustest.Proc, queue string, max int) []delivery {
	t.Helper()
	code, _, body := p.Call(t, "POST", "/v1/queues/"+queue+"/receive", map[string]any{"max": max, "wait": "2s"})
	if code != 200 {
		t.Fatalf("receive: %d %s", code, body)
	}
	var out struct{ Messages []delivery }
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	return out.Messages
}

// TestReceiptRace: consumer A receives a batch and nacks it; B receives
// the messages again. A's old receipts used to ack B's deliveries (the
// messages gone while B worked on them) or hand them to a third consumer.
// Now every use of A's receipts is 409 receipt-stale and changes nothing;
// B's acks take each message exactly once.
func TestReceiptRace(t *testing.T) {
	bin := plexustest.Binary(t)
	p := plexustest.Up(t, bin, filepath.Join(t.TempDir(), "data"))
	p.Call(t, "PUT", "/v1/queues/race", map[string]any{"visibilityTimeout": "1m", "retryDelay": "10ms", "retryAttempts": 10})
	const n = 50
	var msgs []map[string]any
	for i := range n {
		msgs = append(msgs, map[string]any{"id": fmt.Sprintf("m%d", i), "payload": i})
	}
	if code, _, body := p.Call(t, "POST", "/v1/queues/race/messages", map[string]any{"messages": msgs}); code != 201 {
		t.Fatalf("publish: %d %s", code, body)
	}
	a := receiveAll(t, p, "race", n)
	for _, d := range a {
		if code, _, body := p.Call(t, "POST", "/v1/queues/race/nack", map[string]any{"receipt": d.Receipt, "error": "A failed"}); code != 200 {
			t.Fatalf("A's nack: %d %s", code, body)
		}
	}
	var b []delivery
	for len(b) < n {
		got := receiveAll(t, p, "race", n)
		if len(got) == 0 {
			t.Fatalf("B received %d of %d", len(b), n)
		}
		b = append(b, got...)
	}
	// A's stale receipts, concurrently with B's acks.
	stale := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range a {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for _, op := range []struct {
				path string
				body any
			}{
				{"ack", map[string]any{"receipts": []string{a[i].Receipt}}},
				{"nack", map[string]any{"receipt": a[i].Receipt}},
				{"extend", map[string]any{"receipts": []string{a[i].Receipt}}},
			} {
				code, _, body := p.Call(t, "POST", "/v1/queues/race/"+op.path, op.body)
				mu.Lock()
				stale[code]++
				mu.Unlock()
				if code != 409 || !strings.Contains(string(body), "receipt-stale") {
					t.Errorf("A's stale %s: %d %s", op.path, code, body)
				}
			}
		}()
		go func() {
			defer wg.Done()
			if code, _, body := p.Call(t, "POST", "/v1/queues/race/ack", map[string]any{"receipts": []string{b[i].Receipt}}); code != 200 {
				t.Errorf("B's ack: %d %s", code, body)
			}
		}()
	}
	wg.Wait()
	code, _, body := p.Call(t, "GET", "/v1/queues/race", nil)
	var st struct {
		QueueSize, InFlight, ProcessedMessages, DeadLetterQueueSize int
	}
	if err := json.Unmarshal(body, &st); err != nil || code != 200 {
		t.Fatalf("stats %d %s", code, body)
	}
	lost := n - st.ProcessedMessages
	t.Logf("receipt race: %d messages, %d stale uses answered %v, processed %d, lost %d, left %d, in flight %d",
		n, 3*n, stale, st.ProcessedMessages, lost, st.QueueSize, st.InFlight)
	if st.ProcessedMessages != n || st.QueueSize != 0 || st.InFlight != 0 || st.DeadLetterQueueSize != 0 {
		t.Fatalf("after the race: %s", body)
	}
}

// TestConcurrentDropOldestPublishers: six publishers on a full drop-oldest
// queue of 50 (435 of 600 publishes failed; a message was dead-lettered up
// to six times). Every publish succeeds now, each dropped message is
// dead-lettered exactly once with reason overflow, and the queue holds
// exactly maxSize at the end.
func TestConcurrentDropOldestPublishers(t *testing.T) {
	bin := plexustest.Binary(t)
	p := plexustest.Up(t, bin, filepath.Join(t.TempDir(), "data"))
	p.Call(t, "PUT", "/v1/queues/drop", map[string]any{"maxSize": 50})
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := map[string]int{}
	acked := 0
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				code, _, body := p.Call(t, "POST", "/v1/queues/drop/messages", map[string]any{"id": fmt.Sprintf("p%d-%d", w, i), "payload": i})
				mu.Lock()
				if code == 201 {
					acked++
				} else {
					failed[fmt.Sprintf("%d %s", code, body)]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	code, _, body := p.Call(t, "GET", "/v1/queues/drop/dead-letters?limit=1000", nil)
	var dl struct {
		Messages []struct{ ID, DeadLetterReason string }
	}
	if err := json.Unmarshal(body, &dl); err != nil || code != 200 {
		t.Fatalf("dead letters: %d %s", code, body)
	}
	seen := map[string]int{}
	dups := 0
	for _, m := range dl.Messages {
		if seen[m.ID]++; seen[m.ID] > 1 || m.DeadLetterReason != "overflow" {
			dups++
		}
	}
	_, _, body = p.Call(t, "GET", "/v1/queues/drop", nil)
	var st struct{ QueueSize, DeadLetteredMessages int }
	_ = json.Unmarshal(body, &st)
	lost := acked - st.QueueSize - len(seen)
	t.Logf("drop-oldest: %d publishes acknowledged, %d failed %v; queue %d, dead-lettered %d (%d twice), lost %d",
		acked, 600-acked, failed, st.QueueSize, len(dl.Messages), dups, lost)
	if acked != 600 || st.QueueSize != 50 || len(dl.Messages) != 550 || dups != 0 || lost != 0 || st.DeadLetteredMessages != 550 {
		t.Fatalf("after the race: %s", body)
	}
}
