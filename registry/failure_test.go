package registry

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/internal/enginetest"
	"github.com/plexushq/plexus/internal/httpx"
	"github.com/plexushq/plexus/internal/httpxtest"
	"github.com/plexushq/plexus/internal/logtest"
)

func put(t *testing.T, url, body string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// TestEngineGoneAnswers503WithRetryHint: with the engine gone a
// registration answers within the request deadline with 503, the retry
// hint in the header and the body, and one log line with the cause (it was
// a 503 with the hint in the body only, or hung).
func TestEngineGoneAnswers503WithRetryHint(t *testing.T) {
	eng, srv := enginetest.StartExternal(t, engine.Config{})
	s, err := OpenStore(ctxT(t), eng, StoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	logs := &logtest.Buffer{}
	api := httptest.NewServer(NewAPI(s, APIConfig{RequestTimeout: 300 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, nil))}).Handler())
	defer api.Close()
	srv.Shutdown()
	srv.WaitForShutdown()
	start := time.Now()
	code, h, body := put(t, api.URL+"/v1/services/web/instances/w1", `{"url":"http://127.0.0.1:1"}`)
	took := time.Since(start)
	p := httpxtest.Retry(t, http.StatusServiceUnavailable, h, body)
	if code != 503 || p.Type != httpx.ProblemTypeBase+"engine-unavailable" {
		t.Fatalf("%d %s", code, body)
	}
	if took > 10*time.Second {
		t.Fatalf("answered after %s", took)
	}
	if n := strings.Count(logs.String(), "request failed"); n != 1 || !strings.Contains(logs.String(), "/v1/services/web/instances/w1") {
		t.Fatalf("%d log lines:\n%s", n, logs.String())
	}
}

// TestConflictAnswerCarriesRetryHintInHeaderAndBody: a lost
// compare-and-set race is a 409 the client may retry; the hint was only in
// the header.
func TestConflictAnswerCarriesRetryHintInHeaderAndBody(t *testing.T) {
	a := NewAPI(nil, APIConfig{})
	rec := httptest.NewRecorder()
	a.fail(rec, httptest.NewRequest("PUT", "/v1/services/s/instances/i/status", nil), ErrConflict)
	p := httpxtest.Retry(t, http.StatusConflict, rec.Header(), rec.Body.Bytes())
	if p.Type != httpx.ProblemTypeBase+"conflict" {
		t.Fatalf("%+v", p)
	}
}

// TestRegisterRefusedWhileStorageFull: below the disk reserve a new
// registration is 507 and stores nothing; heartbeats of registered
// instances go on.
func TestRegisterRefusedWhileStorageFull(t *testing.T) {
	eng := enginetest.StartConfig(t, engine.Config{DiskReserve: 1 << 60})
	s, err := OpenStore(ctxT(t), eng, StoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(NewAPI(s, APIConfig{}).Handler())
	defer api.Close()
	code, h, body := put(t, api.URL+"/v1/services/web/instances/w1", `{"url":"http://127.0.0.1:1"}`)
	p := httpxtest.Problem(t, http.StatusInsufficientStorage, h, body)
	if code != 507 || p.Type != httpx.ProblemTypeBase+"storage-full" {
		t.Fatalf("%d %s", code, body)
	}
	if _, err := s.Get(context.Background(), "web", "w1"); err == nil {
		t.Fatal("refused registration was stored")
	}
}
