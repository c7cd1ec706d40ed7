//go:build deploy

package deploy_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

const (
	survivorQueue  = "deploytest-survivors"
	survivorStream = "deploytest-1"
)

// durable is what the test left in the Plexus container's volume.
type durable struct {
	queued   int      // queue size of survivorQueue
	version  int64    // version of survivorStream
	eventIDs []string // ids of survivorStream's events, in order
	total    int      // events in the global log
}

func (d durable) String() string {
	return fmt.Sprintf("%d queued messages, %d events in %s (%d in the log)", d.queued, d.version, survivorStream, d.total)
}

func readDurable(t *testing.T, admin api) durable {
	t.Helper()
	var q struct {
		QueueSize int `json:"queueSize"`
	}
	admin.must(t, "GET", "/v1/queues/"+survivorQueue, nil, &q, http.StatusOK)
	var s struct {
		Events []struct {
			ID      string `json:"id"`
			Version int64  `json:"version"`
		} `json:"events"`
	}
	admin.must(t, "GET", "/v1/streams/"+survivorStream+"/events?limit=1000", nil, &s, http.StatusOK)
	var all struct {
		Events []struct{} `json:"events"`
	}
	admin.must(t, "GET", "/v1/events?limit=1000", nil, &all, http.StatusOK)
	d := durable{queued: q.QueueSize, total: len(all.Events)}
	for _, e := range s.Events {
		d.eventIDs = append(d.eventIDs, e.ID)
		d.version = e.Version
	}
	return d
}

// fill publishes n messages (ids m-<from>…) to the queue, which no one
// consumes, and appends n/2 events to the stream.
func fill(t *testing.T, admin api, from, n int, version int64) {
	t.Helper()
	var msgs []map[string]any
	for i := from; i < from+n; i++ {
		msgs = append(msgs, map[string]any{"id": fmt.Sprintf("m-%d", i), "payload": map[string]int{"n": i}})
	}
	admin.must(t, "POST", "/v1/queues/"+survivorQueue+"/messages", map[string]any{"messages": msgs}, nil, http.StatusCreated)
	var evs []map[string]any
	for i := from; i < from+n/2; i++ {
		evs = append(evs, map[string]any{"type": "deploytest.filled", "id": fmt.Sprintf("e-%d", i), "data": map[string]int{"n": i}})
	}
	admin.must(t, "POST", "/v1/streams/"+survivorStream+"/events", map[string]any{"expectedVersion": version, "events": evs}, nil, http.StatusCreated)
}

// restartKeepsData restarts the Plexus container twice, gracefully and
// with SIGKILL, and checks that what was queued and appended is still
// there, then receives every message and reads every event back.
func restartKeepsData(t *testing.T, c *compose, token string) {
	id := c.containers("plexus")[0]
	admin := api{base: c.port("plexus", 3100), token: token, hc: &http.Client{}}
	admin.must(t, "PUT", "/v1/queues/"+survivorQueue, map[string]any{}, nil, http.StatusCreated)
	fill(t, admin, 0, 50, 0)
	before := readDurable(t, admin)
	if before.queued != 50 || before.version != 25 {
		t.Fatalf("before the restart: %s, want 50 queued and 25 events", before)
	}

	start := time.Now()
	run(t, 2*time.Minute, nil, "docker", "restart", "-t", "30", id)
	admin.base = c.port("plexus", 3100) // a restart may publish on another port
	waitReady(t, admin.base, time.Minute)
	afterRestart := readDurable(t, admin)
	report(t, "plexus container restart (graceful): before %s; after %s; docker restart to /ready %s",
		before, afterRestart, time.Since(start).Round(10*time.Millisecond))
	same(t, "graceful restart", before, afterRestart)

	fill(t, admin, 50, 10, before.version)
	before = readDurable(t, admin)
	run(t, time.Minute, nil, "docker", "kill", "-s", "KILL", id)
	start = time.Now()
	run(t, time.Minute, nil, "docker", "start", id)
	admin.base = c.port("plexus", 3100)
	waitReady(t, admin.base, time.Minute)
	afterKill := readDurable(t, admin)
	report(t, "plexus container SIGKILL + start: before %s; after %s; docker start to /ready %s",
		before, afterKill, time.Since(start).Round(10*time.Millisecond))
	same(t, "SIGKILL", before, afterKill)

	got := receiveAll(t, admin, 60)
	for i := range 60 {
		if !got[fmt.Sprintf("m-%d", i)] {
			t.Fatalf("message m-%d was not received after the restarts (got %d)", i, len(got))
		}
	}
	report(t, "after the restarts: received and acked %d/60 messages; %d/30 events read back", len(got), len(afterKill.eventIDs))
}

func same(t *testing.T, what string, a, b durable) {
	t.Helper()
	if a.queued != b.queued || a.version != b.version || a.total != b.total || fmt.Sprint(a.eventIDs) != fmt.Sprint(b.eventIDs) {
		t.Fatalf("%s lost data: before %s %v, after %s %v", what, a, a.eventIDs, b, b.eventIDs)
	}
}

// receiveAll receives and acks until want distinct ids arrived (bounded).
func receiveAll(t *testing.T, admin api, want int) map[string]bool {
	t.Helper()
	got := map[string]bool{}
	deadline := time.Now().Add(time.Minute)
	for len(got) < want && time.Now().Before(deadline) {
		var r struct {
			Messages []struct {
				ID      string `json:"id"`
				Receipt string `json:"receipt"`
			} `json:"messages"`
		}
		admin.must(t, "POST", "/v1/queues/"+survivorQueue+"/receive", map[string]any{"max": 100, "wait": "2s"}, &r, http.StatusOK)
		var receipts []string
		for _, m := range r.Messages {
			got[m.ID] = true
			receipts = append(receipts, m.Receipt)
		}
		if len(receipts) > 0 {
			admin.must(t, "POST", "/v1/queues/"+survivorQueue+"/ack", map[string]any{"receipts": receipts}, nil, http.StatusOK)
		}
	}
	return got
}
