package clustertest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/internal/clustertest"
	"github.com/plexushq/plexus/internal/nodetest"
	"github.com/plexushq/plexus/server"
)

// The failover test's cluster: user and password of the NATS servers, the
// nodes' request deadline.
const (
	natsUser, natsPassword = "plexus", "cluster-test-password"
	requestTimeout         = 2 * time.Second
)

// startPlexus runs a node on the cluster with every listener behind a
// proxy; kill cuts the proxies (clients see resets, as from a machine that
// died), drops its engine connection without a drain, and stops what is
// left of it.
func startPlexus(t *testing.T, c *clustertest.Cluster, name string, roles []string) *plexusNode {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("CLUSTERTEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", name)
	}
	n, err := server.New(server.Config{Roles: roles, AdminToken: token, NATS: c.URLs(), NATSReplicas: 3,
		NATSAuth: server.NATSAuth{User: natsUser, Password: natsPassword}, RequestTimeout: requestTimeout,
		DataDir: t.TempDir(), AdminAddr: "127.0.0.1:0", GatewayAddr: "127.0.0.1:0", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	pn := &plexusNode{name: name, admin: clustertest.NewProxy(t, n.AdminAddr())}
	if n.GatewayAddr() != "" {
		pn.gateway = clustertest.NewProxy(t, n.GatewayAddr())
	}
	stop := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return n.Stop(ctx)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil && !pn.down.Load() {
			t.Errorf("stop node %s: %v", name, err)
		}
	})
	pn.kill = func() {
		pn.down.Store(true)
		pn.admin.Cut()
		if pn.gateway != nil {
			pn.gateway.Cut()
		}
		n.Engine().Conn().Close()
		_ = stop()
	}
	return pn
}

// leaseGone registers an instance with a short lease that nobody renews
// and returns when every gateway's view has dropped it: how long after the
// engine removed it (the removal marker's time) each did, and the marker's
// lag behind the lease's end.
func leaseGone(t *testing.T, c *clustertest.Cluster, via *plexusNode, gws []*plexusNode, id string, then func()) (perGateway map[string]time.Duration, engineLag time.Duration) {
	t.Helper()
	body := `{"url":"http://127.0.0.1:9","ttl":"2s"}`
	req, _ := http.NewRequest(http.MethodPut, via.adminURL()+"/v1/services/lease/instances/"+id, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var inst struct {
		ExpiresAt time.Time `json:"expiresAt"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&inst)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("register lease: %s", resp.Status)
	}
	for _, gw := range gws {
		nodetest.Eventually(t, "the lease instance in gateway "+gw.name, func() bool { return gatewayHas(gw, "lease") })
	}
	if then != nil {
		then()
	}
	seen := map[string]time.Time{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, gw := range gws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(90 * time.Second)
			for time.Now().Before(deadline) {
				if !gatewayHas(gw, "lease") {
					mu.Lock()
					seen[gw.name] = time.Now()
					mu.Unlock()
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	marker := markerTime(t, c, "lease."+id)
	perGateway = map[string]time.Duration{}
	for _, gw := range gws {
		at, ok := seen[gw.name]
		if !ok {
			t.Fatalf("gateway %s still routes to an expired lease after 90s", gw.name)
		}
		perGateway[gw.name] = at.Sub(marker)
	}
	return perGateway, marker.Sub(inst.ExpiresAt)
}

// watchServer is the server that holds the most watches of the registry
// bucket (the nodes' caches): killing it stalls those watches.
func watchServer(t *testing.T, c *clustertest.Cluster) int {
	t.Helper()
	counts := map[string]int{}
	withRegistryStream(t, c, func(ctx context.Context, s jetstream.Stream) {
		for ci := range s.ListConsumers(ctx).Info() {
			if ci.Cluster != nil {
				counts[ci.Cluster.Leader]++
			}
		}
	})
	best, most := -1, 0
	for i := range c.Size() {
		if n := counts[fmt.Sprintf("s%d", i)]; n > most {
			best, most = i, n
		}
	}
	if best < 0 {
		t.Fatalf("no server holds a registry watch: %v", counts)
	}
	return best
}

// gatewayHas reports whether a gateway's view holds service.
func gatewayHas(gw *plexusNode, service string) bool {
	resp, err := http.Get(gw.gatewayURL() + "/health")
	if err != nil {
		return true // cannot tell: ask again
	}
	defer resp.Body.Close()
	var h struct {
		Services map[string]any `json:"services"`
	}
	if json.NewDecoder(resp.Body).Decode(&h) != nil {
		return true
	}
	_, ok := h.Services[service]
	return ok
}

// markerTime is when the engine stored the removal marker of a registry key.
func markerTime(t *testing.T, c *clustertest.Cluster, key string) time.Time {
	t.Helper()
	var at time.Time
	withRegistryStream(t, c, func(ctx context.Context, s jetstream.Stream) {
		m, err := s.GetLastMsgForSubject(ctx, "$KV."+engine.BucketRegistry+"."+key)
		if err != nil {
			t.Fatal(err)
		}
		if m.Header.Get(jetstream.MarkerReasonHeader) == "" && m.Header.Get("KV-Operation") == "" {
			t.Fatalf("the last entry of %s is not a removal: %v", key, m.Header)
		}
		at = m.Time
	})
	return at
}

// withRegistryStream runs f with the registry bucket's stream, read
// through the first server that is up.
func withRegistryStream(t *testing.T, c *clustertest.Cluster, f func(context.Context, jetstream.Stream)) {
	t.Helper()
	for i := range c.Size() {
		if c.Server(i) == nil {
			continue
		}
		nc, err := c.Connect(i)
		if err != nil {
			continue
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, "KV_"+engine.BucketRegistry)
		if err != nil {
			t.Fatal(err)
		}
		f(ctx, s)
		return
	}
	t.Fatal("no server to read the registry's stream from")
}

// TestClusterFailover runs Plexus on a 3-node JetStream cluster (every
// stream and bucket with 3 replicas, user/password auth) with three
// nodes: A and B (every role) and C (gateway and checker). A bounded load
// publishes, receives and acks queue messages and appends events with
// exact expected versions across A and B, and sends requests through the
// gateways of A and C to two registered backends. Then the queue stream's
// leader is killed, and later node B. It asserts: nothing acknowledged is
// lost (every acknowledged message delivered, every acknowledged event
// stored once at its version), duplicate deliveries only as the ids show
// them, no 5xx but 503 (always with the retry hint in header and body),
// every request answered within the nodes' deadline (2s) plus slack, the
// gateways routing throughout, and a lease expiry reaching every gateway.
//
// PLEXUS_CLUSTER_SOAK=10m runs the load that long, killing the queue
// stream's current leader (then restarting it) round after round.
func TestClusterFailover(t *testing.T) {
	soak, _ := time.ParseDuration(os.Getenv("PLEXUS_CLUSTER_SOAK"))
	began := time.Now()
	c := clustertest.Start(t, clustertest.Options{User: natsUser, Password: natsPassword})
	web1, web2 := newOK(t), newOK(t)
	a := startPlexus(t, c, "A", server.AllRoles)
	b := startPlexus(t, c, "B", server.AllRoles)
	cn := startPlexus(t, c, "C", []string{server.RoleGateway, server.RoleChecker})
	for i, u := range []string{web1, web2} {
		putJSON(t, a.adminURL()+fmt.Sprintf("/v1/services/web/instances/w%d", i+1),
			`{"url":"`+u+`","ttl":"10m","check":{"path":"/","interval":"1s"}}`)
	}
	putJSON(t, a.adminURL()+"/v1/queues/jobs",
		`{"maxSize":1000000,"overflow":"reject","visibilityTimeout":"3s","retryAttempts":1000}`)
	for _, gw := range []*plexusNode{a, cn} {
		nodetest.Eventually(t, "gateway "+gw.name+" routes", func() bool { return gatewayRoutes(gw) })
	}
	base, _ := leaseGone(t, c, a, []*plexusNode{a, b, cn}, "steady", nil)
	t.Logf("steady state: a lease expiry reached the gateways %v after the engine removed it", base)

	lt := &loadTest{t: t, nodes: []*plexusNode{a, b}, gw: []*plexusNode{a, cn}, l: newLedger(),
		stop: make(chan struct{}), drained: make(chan struct{}), timeout: requestTimeout,
		hc: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
	for g := range 2 {
		lt.wg.Add(3)
		go lt.publisher(g)
		go lt.receiver(g)
		go lt.appender(g)
	}
	for _, gw := range lt.gw {
		lt.wg.Add(1)
		go lt.prober(gw)
	}
	time.Sleep(3 * time.Second)

	var worstLease time.Duration
	for round := 0; round < 1 || time.Since(began) < soak; round++ {
		// The data path: the queue stream's leader dies under the load.
		queueStream := engine.QueueStreamPrefix + "jobs"
		leader := c.WaitStreamLeader(queueStream, 30*time.Second)
		t.Logf("round %d: leaders: %s s%d, events s%d, registry s%d, meta s%d; killing s%d", round, queueStream, leader,
			c.StreamLeader(engine.StreamEvents), c.StreamLeader("KV_"+engine.BucketRegistry), c.MetaLeader(), leader)
		killed := time.Now()
		c.Kill(leader)
		next := c.WaitStreamLeader(queueStream, 60*time.Second)
		t.Logf("round %d: s%d leads the queue %s after the kill", round, next, time.Since(killed).Round(time.Millisecond))
		time.Sleep(4 * time.Second)
		if round == 0 {
			t.Logf("killing node B")
			b.kill()
			time.Sleep(4 * time.Second)
		}
		c.Restart(leader)
		c.WaitReady(60 * time.Second)
		// The view path: the server feeding the caches' watches dies while a
		// lease runs out.
		ws := watchServer(t, c)
		lag, engineLag := leaseGone(t, c, a, []*plexusNode{a, cn}, fmt.Sprintf("r%d", round), func() { c.Kill(ws) })
		t.Logf("round %d: with s%d (the watches' server) killed, a lease was removed %s after its end and seen by the gateways %v after that",
			round, ws, engineLag.Round(time.Millisecond), lag)
		for _, d := range lag {
			worstLease = max(worstLease, d)
		}
		c.Restart(ws)
		c.WaitReady(60 * time.Second)
		time.Sleep(2 * time.Second)
	}

	close(lt.stop)
	// Let the receivers take everything acknowledged (redeliveries of what
	// B held come after the visibility timeout).
	drainBy := time.Now().Add(45 * time.Second)
	for time.Now().Before(drainBy) && !lt.allDelivered() {
		time.Sleep(200 * time.Millisecond)
	}
	close(lt.drained)
	lt.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	eventDups := lt.checkEvents(ctx)
	acked, lost, dups, events, _ := lt.report()
	longest := time.Duration(0)
	for k, d := range lt.l.longest {
		if !strings.HasPrefix(k, "receive") {
			longest = max(longest, d)
		}
	}
	t.Logf("RESULT queue: %d acknowledged, %d lost, %d duplicate deliveries (by id); events: %d acknowledged, %d duplicated, %d appends given up; "+
		"longest request %s (receive: %s incl. its 1s wait); lease expiry reached every gateway within %s of the engine's removal during failover (steady %v)",
		acked, lost, dups, events, eventDups, lt.l.appendFails, longest.Round(time.Millisecond),
		lt.l.longest["receive"].Round(time.Millisecond), worstLease.Round(time.Millisecond), base)
	for _, b := range lt.l.bad {
		t.Error(b)
	}
	if acked == 0 || events == 0 {
		t.Fatalf("the load did nothing: %d messages, %d events", acked, events)
	}
	// The view bound: the watch notices a stall within its check interval
	// (1s) plus the stall threshold (2s) and resyncs; the engine may need a
	// leader election first. Generous for a loaded machine.
	if worstLease > 20*time.Second {
		t.Errorf("a lease expiry took %s to reach a gateway", worstLease)
	}
}

func (lt *loadTest) allDelivered() bool {
	lt.l.mu.Lock()
	defer lt.l.mu.Unlock()
	for id := range lt.l.published {
		if lt.l.delivered[id] == 0 {
			return false
		}
	}
	return true
}

func gatewayRoutes(gw *plexusNode) bool {
	resp, err := http.Get(gw.gatewayURL() + "/api/web/")
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func putJSON(t *testing.T, url, body string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("PUT %s: %s %s", url, resp.Status, b)
	}
}
