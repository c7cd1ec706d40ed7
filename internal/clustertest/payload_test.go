package clustertest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/plexushq/plexus/internal/clustertest"
	"github.com/plexushq/plexus/internal/nodetest"
	"github.com/plexushq/plexus/server"
)

// adminDo sends a JSON request to a node's admin API and returns the
// status and the decoded answer.
func adminDo(t *testing.T, n *server.Node, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+n.AdminAddr()+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

// TestOversizedWritesAre413: on a server with a 128 KiB max_payload (the
// embedded engine allows 8 MiB) a larger queue message used to be a 500
// and a larger event a 422. Both are now 413 naming the server's limit,
// and nothing is stored.
func TestOversizedWritesAre413(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Size: 1, MaxPayload: 128 << 10})
	n := nodetest.Start(t, server.Config{AdminToken: token, NATS: c.URLs()})
	if code, _ := adminDo(t, n, http.MethodPut, "/v1/queues/big", `{}`); code/100 != 2 {
		t.Fatalf("create queue: %d", code)
	}
	big := strings.Repeat("x", 200<<10)
	check := func(what string, code int, p map[string]any) {
		t.Helper()
		detail, _ := p["detail"].(string)
		if code != http.StatusRequestEntityTooLarge || !strings.Contains(detail, "131072") || p["maxPayloadBytes"] != float64(128<<10) {
			t.Fatalf("%s: %d %v, want 413 naming the 131072-byte limit", what, code, p)
		}
	}
	code, p := adminDo(t, n, http.MethodPost, "/v1/queues/big/messages", `{"payload":"`+big+`"}`)
	check("queue message", code, p)
	code, p = adminDo(t, n, http.MethodPost, "/v1/queues/big/messages",
		`{"messages":[{"payload":"small"},{"payload":"`+big+`"}]}`)
	check("queue batch", code, p)
	code, p = adminDo(t, n, http.MethodPost, "/v1/streams/big-1/events", `{"events":[{"type":"t","data":"`+big+`"}]}`)
	check("event", code, p)
	code, p = adminDo(t, n, http.MethodGet, "/v1/queues/big", "")
	if code != http.StatusOK || fmt.Sprint(p["queueSize"]) != "0" || fmt.Sprint(p["publishedMessages"]) != "0" {
		t.Fatalf("queue after the refused writes: %d %v", code, p)
	}
	if code, _ := adminDo(t, n, http.MethodGet, "/v1/streams/big-1/events", ""); code != http.StatusNotFound {
		t.Fatalf("stream after the refused append: %d, want 404", code)
	}
	if code, _ := adminDo(t, n, http.MethodPost, "/v1/queues/big/messages", `{"payload":"small"}`); code/100 != 2 {
		t.Fatalf("a small message after the refusals: %d", code)
	}
}
