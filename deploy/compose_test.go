//go:build deploy

package deploy_test

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// topology is the core profile of docker-compose.yml: service → replicas.
var topology = map[string]int{"user-service": 3, "order-service": 2, "notification-service": 1, "order-saga": 1}

// TestCompose brings the core profile of deploy/docker-compose.yml up from
// the images scripts/image.sh built, and checks what a user relies on:
// every replica registers and is discovered by the gateway; an order goes
// end to end through the gateway (user-service, order-service through the
// service client, the notifications queue, notification-service); killing
// one of three user-service containers under load fails no request; the
// Plexus container restarted (gracefully, then with SIGKILL) keeps its
// queued messages and events in its volume. Everything started is removed
// at the end.
func TestCompose(t *testing.T) {
	im := imagesFromEnv(t)
	token := "deploytest-" + randomHex(16)
	c := newCompose(t, im, token)
	t.Cleanup(func() {
		if t.Failed() {
			c.logs()
		}
		c.down()
	})
	// The other profiles pull their images, which cannot be done here;
	// their configuration must at least be valid.
	for _, p := range []string{"monitoring", "full"} {
		c.run(time.Minute, "--profile", p, "config", "-q")
	}
	start := time.Now()
	c.run(5*time.Minute, "up", "-d")
	admin := api{base: c.port("plexus", 3100), token: token, hc: &http.Client{}}
	gw := api{base: c.port("plexus", 3000), hc: &http.Client{}}
	waitTopology(t, c, admin, gw)
	report(t, "compose up to every replica registered and healthy: %s", time.Since(start).Round(100*time.Millisecond))

	userID := orderEndToEnd(t, admin, gw)
	sagaEndToEnd(t, gw)
	t.Run("KillOneUserService", func(t *testing.T) { killUnderLoad(t, c, admin, gw, userID) })
	t.Run("RestartPlexus", func(t *testing.T) { restartKeepsData(t, c, token) })
}

type instance struct {
	ID     string `json:"id"`
	URL    string `json:"url"`
	Status string `json:"status"`
}

func healthyInstances(admin api, service string) ([]instance, error) {
	var out struct {
		Instances []instance `json:"instances"`
	}
	if _, _, err := admin.do("GET", "/v1/services/"+service, nil, &out); err != nil {
		return nil, err
	}
	var ok []instance
	for _, in := range out.Instances {
		if in.Status == "healthy" {
			ok = append(ok, in)
		}
	}
	return ok, nil
}

// waitTopology waits until every container is healthy by its HEALTHCHECK,
// every replica is registered and healthy in the registry, and the
// gateway's /health counts them.
func waitTopology(t *testing.T, c *compose, admin, gw api) {
	t.Helper()
	for svc, n := range topology {
		ids := c.containers(svc)
		if len(ids) != n {
			t.Fatalf("%s: %d containers, want %d", svc, len(ids), n)
		}
		for _, id := range ids {
			if u := inspect(t, id, "{{.Config.User}}"); u != "65532:65532" {
				t.Fatalf("%s runs as %q, want 65532:65532", svc, u)
			}
		}
	}
	eventually(t, 2*time.Minute, "every container healthy", func() bool {
		for _, svc := range []string{"plexus", "user-service", "order-service", "notification-service", "order-saga"} {
			for _, id := range c.containers(svc) {
				if s := inspect(t, id, "{{.State.Health.Status}}"); s != "healthy" {
					return false
				}
			}
		}
		return true
	})
	eventually(t, time.Minute, "every replica registered and healthy", func() bool {
		for svc, n := range topology {
			in, err := healthyInstances(admin, svc)
			if err != nil || len(in) != n {
				return false
			}
		}
		return true
	})
	var h struct {
		Status   string `json:"status"`
		Services map[string]struct {
			Instances int `json:"instances"`
			Healthy   int `json:"healthy"`
		} `json:"services"`
	}
	gw.must(t, "GET", "/health", nil, &h, http.StatusOK)
	for svc, n := range topology {
		if s := h.Services[svc]; s.Healthy != n {
			t.Fatalf("gateway /health: %s %+v, want %d healthy", svc, s, n)
		}
	}
}

type user struct {
	ID    string `json:"id"`
	Email string `json:"email"`
}

// orderEndToEnd creates a user and an order through the gateway and waits
// for the order's notification; it answers the user's id.
func orderEndToEnd(t *testing.T, admin, gw api) string {
	t.Helper()
	var u user
	gw.must(t, "POST", "/api/user-service/users", map[string]string{"name": "Ada", "email": "ada@example.com"}, &u, http.StatusCreated)
	// Every replica answers: the ones that did not create the user rebuild
	// it from the event store.
	seen := map[string]bool{}
	eventually(t, 30*time.Second, "every user-service replica answers for the user", func() bool {
		var got user
		h := gw.must(t, "GET", "/api/user-service/users/"+u.ID, nil, &got, http.StatusOK)
		if got.Email != u.Email {
			t.Fatalf("user %+v, want %+v", got, u)
		}
		seen[h.Get("X-Instance-Id")] = true
		return len(seen) == topology["user-service"]
	})
	var events struct {
		Events []struct {
			Type string `json:"type"`
		} `json:"events"`
	}
	admin.must(t, "GET", "/v1/streams/user-"+u.ID+"/events", nil, &events, http.StatusOK)
	if len(events.Events) != 1 || events.Events[0].Type != "user.created" {
		t.Fatalf("stream user-%s: %+v", u.ID, events.Events)
	}
	if code, _, _ := gw.do("POST", "/api/order-service/orders", map[string]any{"userId": "nobody", "item": "book"}, nil); code != http.StatusUnprocessableEntity {
		t.Fatalf("order for an unknown user: HTTP %d, want 422", code)
	}
	var ord struct {
		ID string `json:"id"`
	}
	gw.must(t, "POST", "/api/order-service/orders", map[string]any{"userId": u.ID, "item": "book", "quantity": 2}, &ord, http.StatusCreated)
	var sent struct {
		Sent int      `json:"sent"`
		Last []string `json:"last"`
	}
	eventually(t, 30*time.Second, "notification for order "+ord.ID, func() bool {
		gw.must(t, "GET", "/api/notification-service/sent", nil, &sent, http.StatusOK)
		return sent.Sent >= 1
	})
	if sent.Sent != 1 || sent.Last[0] != "order-"+ord.ID {
		t.Fatalf("sent %+v, want exactly order-%s", sent, ord.ID)
	}
	return u.ID
}

// sagaEndToEnd runs two orders through the saga container: one is
// confirmed, one the user cannot pay is compensated and cancelled.
func sagaEndToEnd(t *testing.T, gw api) {
	t.Helper()
	gw.must(t, "POST", "/api/order-saga/stock/book", map[string]any{"quantity": 5, "price": 1250}, nil, http.StatusOK)
	gw.must(t, "POST", "/api/order-saga/accounts/ada/credits", map[string]any{"amount": 3000}, nil, http.StatusOK)
	for _, o := range []struct {
		id, status string
	}{{"saga-1", "confirmed"}, {"saga-2", "cancelled"}} { // 2 × 12.50 twice: the second finds 5.00 left
		gw.must(t, "POST", "/api/order-saga/orders", map[string]any{"id": o.id, "userId": "ada", "sku": "book", "quantity": 2}, nil, http.StatusAccepted)
		var got struct {
			Status  string   `json:"status"`
			History []string `json:"history"`
		}
		eventually(t, 30*time.Second, "saga order "+o.id+" settles", func() bool {
			code, _, _ := gw.do("GET", "/api/order-saga/orders/"+o.id, nil, &got)
			return code == http.StatusOK && (got.Status == "confirmed" || got.Status == "cancelled")
		})
		if got.Status != o.status {
			t.Fatalf("saga order %s: %s %v, want %s", o.id, got.Status, got.History, o.status)
		}
	}
	var acc struct {
		Balance int64 `json:"balance"`
	}
	gw.must(t, "GET", "/api/order-saga/accounts/ada", nil, &acc, http.StatusOK)
	var st struct {
		Reserved int `json:"reserved"`
	}
	gw.must(t, "GET", "/api/order-saga/stock/book", nil, &st, http.StatusOK)
	if acc.Balance != 500 || st.Reserved != 2 {
		t.Fatalf("after the saga: balance %d, reserved %d; want 500 and 2", acc.Balance, st.Reserved)
	}
}

// load sends GET requests through the gateway from a few workers until
// stop is closed and counts answers per instance and failures.
type load struct {
	requests, failures atomic.Int64
	mu                 sync.Mutex
	byInstance         map[string]int
	firstErr           string
}

func (l *load) run(gw api, path string, workers int, stop <-chan struct{}) *sync.WaitGroup {
	l.byInstance = map[string]int{}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, h, err := gw.do("GET", path, nil, nil)
				l.requests.Add(1)
				l.mu.Lock()
				if code != http.StatusOK {
					l.failures.Add(1)
					if l.firstErr == "" {
						l.firstErr = fmt.Sprintf("HTTP %d: %v", code, err)
					}
				} else {
					l.byInstance[h.Get("X-Instance-Id")]++
				}
				l.mu.Unlock()
			}
		}()
	}
	return &wg
}

func (l *load) snapshot() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]int, len(l.byInstance))
	for k, v := range l.byInstance {
		out[k] = v
	}
	return out
}

// killUnderLoad kills one user-service container (SIGKILL) while four
// workers read a user through the gateway, and keeps the load on until
// the registry no longer lists the dead replica as healthy and the two
// others answered 200 more requests each.
func killUnderLoad(t *testing.T, c *compose, admin, gw api, userID string) {
	ids := c.containers("user-service")
	victim := ids[0]
	victimHost := inspect(t, victim, "{{.Config.Hostname}}")
	stop := make(chan struct{})
	var l load
	wg := l.run(gw, "/api/user-service/users/"+userID, 4, stop)
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()
	eventually(t, time.Minute, "load reaches every replica", func() bool {
		return len(l.snapshot()) == 3 && l.requests.Load() >= 300
	})
	before := l.requests.Load()
	failedBefore := l.failures.Load()
	run(t, time.Minute, nil, "docker", "kill", "-s", "KILL", victim)
	atKill := l.snapshot()
	gone := eventually(t, time.Minute, "registry stops listing the killed replica as healthy", func() bool {
		in, err := healthyInstances(admin, "user-service")
		if err != nil {
			return false
		}
		for _, i := range in {
			if strings.Contains(i.URL, victimHost) {
				return false
			}
		}
		return true
	})
	marked := l.snapshot()
	eventually(t, time.Minute, "the two remaining replicas answer 200 more requests each", func() bool {
		now := l.snapshot()
		n := 0
		for id, v := range now {
			if v-marked[id] >= 200 {
				n++
			}
		}
		return n >= 2
	})
	close(stop)
	wg.Wait()
	after := l.snapshot()
	total := l.requests.Load()
	failedAfterKill := l.failures.Load() - failedBefore
	var answered []string
	for id, v := range after {
		answered = append(answered, fmt.Sprintf("%s=%d(+%d after kill)", id, v, v-atKill[id]))
	}
	sort.Strings(answered)
	report(t, "kill one user-service: %d requests (%d before the kill, %d after), %d failed while a container was killed; registry dropped it after %s; answers per instance: %s",
		total, before, total-before, failedAfterKill, gone.Round(100*time.Millisecond), strings.Join(answered, " "))
	if failedBefore != 0 || failedAfterKill != 0 {
		t.Fatalf("%d requests failed before the kill and %d after (first: %s)", failedBefore, failedAfterKill, l.firstErr)
	}
	victimID := ""
	for id := range atKill {
		if strings.Contains(id, victimHost) {
			victimID = id
		}
	}
	if victimID == "" {
		t.Fatalf("the killed replica (%s) never answered before the kill: %v", victimHost, atKill)
	}
	if late := after[victimID] - atKill[victimID]; late > 4 {
		// Up to one answer per worker may have been on its way when the
		// kill landed.
		t.Fatalf("the killed replica answered %d requests after the kill", late)
	}
}
