package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plexushq/plexus/internal/plexustest"
)

// adminClient calls a child plexus's admin API.
type adminClient struct{ p *plexustest.Proc }

func (a adminClient) call(method, path string, in, out any) (int, error) {
	code, _, body := a.p.CallContext(context.Background(), method, path, in)
	if code == 0 {
		return 0, fmt.Errorf("%s %s: %s", method, path, body)
	}
	if out != nil && code < 300 {
		return code, json.Unmarshal(body, out)
	}
	return code, nil
}

type crashState struct {
	mu        sync.Mutex
	acked     map[string]bool // publish answered 201
	delivered map[string]int  // deliveries per id
}

func (s *crashState) produce(a adminClient, worker int, next *atomic.Int64, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		msgs := make([]map[string]any, 10)
		ids := make([]string, 10)
		for i := range msgs {
			ids[i] = "m-" + strconv.FormatInt(next.Add(1), 10)
			msgs[i] = map[string]any{"id": ids[i], "payload": map[string]any{"w": worker}}
		}
		st, err := a.call("POST", "/v1/queues/crash/messages", map[string]any{"messages": msgs}, nil)
		if err != nil || st != 201 {
			time.Sleep(20 * time.Millisecond)
			continue // not acknowledged: may or may not be stored
		}
		s.mu.Lock()
		for _, id := range ids {
			s.acked[id] = true
		}
		s.mu.Unlock()
	}
}

func (s *crashState) consume(a adminClient, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		var out struct {
			Messages []struct{ ID, Receipt string }
		}
		st, err := a.call("POST", "/v1/queues/crash/receive", map[string]any{"max": 20, "wait": "500ms"}, &out)
		if err != nil || st != 200 {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		rs := make([]string, 0, len(out.Messages))
		s.mu.Lock()
		for _, m := range out.Messages {
			s.delivered[m.ID]++
			rs = append(rs, m.Receipt)
		}
		s.mu.Unlock()
		if len(rs) > 0 {
			_, _ = a.call("POST", "/v1/queues/crash/ack", map[string]any{"receipts": rs}, nil)
		}
	}
}

func (s *crashState) missing() (missing []string, dups, deliveries int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.acked {
		if s.delivered[id] == 0 {
			missing = append(missing, id)
		}
	}
	for _, n := range s.delivered {
		deliveries += n
		dups += n - 1
	}
	return missing, dups, deliveries
}

// TestCrashKill9LosesNothingAcknowledged publishes and consumes through the
// HTTP API of a child plexus process, kills it with SIGKILL in the middle,
// restarts it on the same data dir and counts: every message whose publish
// was acknowledged is delivered at least once, and duplicates (detectable
// by id) are bounded by what was in flight at the kill.
func TestCrashKill9LosesNothingAcknowledged(t *testing.T) {
	t.Parallel()
	bin := plexustest.Binary(t)
	data := filepath.Join(t.TempDir(), "data")
	p := plexustest.Up(t, bin, data)
	a := adminClient{p}
	if st, err := a.call("PUT", "/v1/queues/crash", map[string]any{"maxSize": 1000000, "visibilityTimeout": "1s", "retryAttempts": 50}, nil); err != nil || st != 201 {
		t.Fatalf("create: %d %v", st, err)
	}
	s := &crashState{acked: map[string]bool{}, delivered: map[string]int{}}
	var next atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(2)
		go func() { defer wg.Done(); s.produce(a, w, &next, stop) }()
		go func() { defer wg.Done(); s.consume(a, stop) }()
	}
	time.Sleep(1500 * time.Millisecond)
	p.Kill()
	close(stop)
	wg.Wait()
	_, _, before := s.missing()
	s.mu.Lock()
	ackedAtKill := len(s.acked)
	s.mu.Unlock()
	if ackedAtKill < 100 || before == 0 {
		t.Fatalf("too little traffic before the kill: %d acknowledged, %d delivered", ackedAtKill, before)
	}

	p = plexustest.Up(t, bin, data)
	defer p.Stop()
	a = adminClient{p}
	stop = make(chan struct{})
	for range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); s.consume(a, stop) }()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		missing, _, _ := s.missing()
		if len(missing) == 0 {
			break
		}
		if ctx.Err() != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("%d of %d acknowledged messages never delivered, e.g. %v\n%s", len(missing), ackedAtKill, missing[:min(5, len(missing))], p.Out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(1200 * time.Millisecond) // let unacked in-flight deliveries come back once more
	close(stop)
	wg.Wait()
	_, dups, deliveries := s.missing()
	t.Logf("acknowledged %d, deliveries %d, duplicates %d", ackedAtKill, deliveries, dups)
	// Duplicates come only from deliveries whose ack the kill cut off: at
	// most the receive batches in flight (2 consumers × 20) plus the batch
	// each was acking.
	if dups > 4*20 {
		t.Fatalf("%d duplicates, want at most %d", dups, 4*20)
	}
	var info Info
	if st, err := a.call("GET", "/v1/queues/crash", nil, &info); err != nil || st != 200 || info.QueueSize != 0 || info.DeadLetterQueueSize != 0 {
		t.Fatalf("after drain: %d %v %+v", st, err, info)
	}
}
