package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/plexushq/plexus/eventstore"
	"github.com/plexushq/plexus/internal/plexustest"
)

type acked struct {
	stream  string
	version int64
	id      string
}

func TestKill9DuringAppendsLosesNoAcknowledgedEvent(t *testing.T) {
	bin := plexustest.Binary(t)
	data := filepath.Join(t.TempDir(), "data")
	proc := plexustest.Up(t, bin, data, "--log-level", "error")

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := eventstore.NewClient(proc.Admin, plexustest.Token, &http.Client{Transport: tr, Timeout: 5 * time.Second})
	const writers = 8
	var mu sync.Mutex
	var acks []acked
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := fmt.Sprintf("writer-%d", w)
			version := int64(0)
			for i := 0; ctx.Err() == nil; i++ {
				n := 1 + i%3
				events := make([]eventstore.Event, n)
				for j := range events {
					events[j] = eventstore.Event{Type: "k.appended", ID: fmt.Sprintf("%s-%d-%d", stream, i, j), Data: []byte(fmt.Sprint(i))}
				}
				res, err := c.Append(ctx, stream, version, events...)
				if err != nil {
					return // the node is gone
				}
				mu.Lock()
				for j, e := range events {
					acks = append(acks, acked{stream, version + int64(j) + 1, e.ID})
				}
				mu.Unlock()
				if res.Version != version+int64(n) {
					t.Errorf("%s: version %d after appending %d at %d", stream, res.Version, n, version)
					return
				}
				version = res.Version
			}
		}()
	}
	for {
		time.Sleep(100 * time.Millisecond)
		mu.Lock()
		n := len(acks)
		mu.Unlock()
		if n >= 400 {
			break
		}
	}
	proc.Kill()
	cancel()
	wg.Wait()
	tr.CloseIdleConnections()

	proc = plexustest.Up(t, bin, data, "--log-level", "error")
	defer proc.Stop()
	c = eventstore.NewClient(proc.Admin, plexustest.Token, &http.Client{Transport: tr, Timeout: 5 * time.Second})
	stored := map[string]map[int64]string{}
	rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer rcancel()
	for w := range writers {
		stream := fmt.Sprintf("writer-%d", w)
		stored[stream] = map[int64]string{}
		for from := int64(1); ; {
			evs, err := c.ReadStream(rctx, stream, from, 1000)
			if errors.Is(err, eventstore.ErrStreamNotFound) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range evs {
				if e.Version != from {
					t.Fatalf("%s: version %d where %d was expected (gap)", stream, e.Version, from)
				}
				stored[stream][e.Version] = e.ID
				from++
			}
			if len(evs) < 1000 {
				break
			}
		}
	}
	for _, a := range acks {
		if got := stored[a.stream][a.version]; got != a.id {
			t.Fatalf("acknowledged %s version %d (%s) lost after kill -9: found %q", a.stream, a.version, a.id, got)
		}
	}
	t.Logf("%d acknowledged events all present after kill -9", len(acks))
}
