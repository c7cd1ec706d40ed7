package faults

import (
	"bufio"
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/internal/httpxtest"
	"github.com/plexushq/plexus/internal/plexustest"
)

// subscribe opens GET /v1/events/subscribe and reads up to the first
// event; the caller closes the body.
func subscribe(t *testing.T, p *plexustest.Proc) (*http.Response, error) {
	t.Helper()
	req, _ := http.NewRequest("GET", p.Admin+"/v1/events/subscribe", nil)
	req.Header.Set("Authorization", "Bearer "+plexustest.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		return resp, err
	}
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			resp.Body.Close()
			return resp, err
		}
		if strings.HasPrefix(line, "data: ") {
			return resp, nil
		}
	}
}

// TestSubscribeDisconnectCycles: 1,100 subscribe-then-disconnect cycles
// (browsers reconnecting) used to leave a consumer each on the engine for
// five minutes, until the engine's limit made every subscription fail.
// Now every cycle works and no consumer is left; past the node's stream cap
// a subscription is a 503 with a retry hint.
func TestSubscribeDisconnectCycles(t *testing.T) {
	bin := plexustest.Binary(t)
	natsAddr := plexustest.FreeAddr(t)
	const natsToken = "fault-test-engine-token"
	p := plexustest.Up(t, bin, filepath.Join(t.TempDir(), "data"), "--nats-listen", natsAddr, "--nats-token", natsToken, "--max-streams", "20")
	appendEvents(t, p, "chat-1", 5)
	nc, err := nats.Connect("nats://"+natsAddr, nats.Token(natsToken))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	consumers := func() int {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := js.Stream(ctx, engine.StreamEvents)
		if err != nil {
			t.Fatal(err)
		}
		return st.CachedInfo().State.Consumers
	}
	failed, most := 0, 0
	for i := range 1100 {
		resp, err := subscribe(t, p)
		if err != nil || resp.StatusCode != 200 {
			failed++
			if resp != nil {
				resp.Body.Close()
			}
			continue
		}
		resp.Body.Close()
		if i%100 == 99 {
			most = max(most, consumers())
		}
	}
	waitFor(t, 15*time.Second, "the last consumers to go", func() bool { return consumers() == 0 })
	t.Logf("1100 subscribe/disconnect cycles: %d failed, at most %d consumers seen at a check, 0 left", failed, most)
	if failed > 0 || most > 20 {
		t.Fatalf("%d cycles failed; up to %d consumers left behind", failed, most)
	}

	// The cap: 20 streams run, the 21st is refused with a retry hint.
	var open []*http.Response
	for range 20 {
		resp, err := subscribe(t, p)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("stream under the cap: %v %v", resp, err)
		}
		open = append(open, resp)
	}
	code, h, body := p.Call(t, "GET", "/v1/events/subscribe", nil)
	if pr := httpxtest.Retry(t, http.StatusServiceUnavailable, h, body); code != 503 || !strings.HasSuffix(pr.Type, "too-many-subscribers") {
		t.Fatalf("stream past the cap: %d %s", code, body)
	}
	for _, r := range open {
		r.Body.Close()
	}
	waitFor(t, 15*time.Second, "consumers to go with their streams", func() bool { return consumers() == 0 })
}
