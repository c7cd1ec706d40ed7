package telemetry

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// searchFixture stores four traces of known services, operations,
// durations, errors and start times.
func searchFixture(t *testing.T) (*Store, string, time.Time) {
	t.Helper()
	store, srv := newReceiver(t, StoreConfig{})
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	mk := func(tid, sid, parent, svc, name string, start time.Duration, d time.Duration, status string) Span {
		sp := Span{TraceID: tid, SpanID: sid, ParentSpanID: parent, Service: svc, Name: name, Status: status}
		sp.setTimes(t0.Add(start), t0.Add(start+d))
		return sp
	}
	store.Add(
		mk("00000000000000000000000000000001", "0000000000000001", "", "gateway", "GET /api/{service}/*", 0, 5*time.Millisecond, StatusUnset),
		mk("00000000000000000000000000000001", "0000000000000002", "0000000000000001", "orders", "load order", time.Millisecond, 2*time.Millisecond, StatusError),
		mk("00000000000000000000000000000002", "0000000000000003", "", "gateway", "GET /api/{service}/*", time.Minute, 200*time.Millisecond, StatusUnset),
		mk("00000000000000000000000000000003", "0000000000000004", "", "gateway", "POST /shop/*", 2*time.Minute, time.Millisecond, StatusUnset),
		mk("00000000000000000000000000000004", "0000000000000005", "", "orders", "GET /api/{service}/*", 3*time.Minute, time.Second, StatusUnset),
	)
	return store, srv.URL, t0
}

// TestTraceSearch: the list filters by service, operation (of that
// service), error, minimum and maximum duration and time range.
func TestTraceSearch(t *testing.T) {
	_, base, t0 := searchFixture(t)
	at := func(d time.Duration) string { return t0.Add(d).Format(time.RFC3339Nano) }
	for _, tc := range []struct {
		query string
		want  []string // trace ids' last digit, newest first
	}{
		{"", []string{"4", "3", "2", "1"}},
		{"service=orders", []string{"4", "1"}},
		{"operation=GET+/api/{service}/*", []string{"4", "2", "1"}},
		{"service=gateway&operation=GET+/api/{service}/*", []string{"2", "1"}},
		{"service=orders&operation=load+order", []string{"1"}},
		{"service=gateway&operation=load+order", nil},
		{"errors=true", []string{"1"}},
		{"minDuration=100ms", []string{"4", "2"}},
		{"minDuration=100ms&maxDuration=500ms", []string{"2"}},
		{"from=" + url.QueryEscape(at(30*time.Second)) + "&to=" + url.QueryEscape(at(150*time.Second)), []string{"3", "2"}},
		{"lookback=1h", nil}, // the fixture's traces started in 2025
	} {
		var list []TraceSummary
		getJSON(t, base+"/v1/traces?"+tc.query, http.StatusOK, &list)
		var got []string
		for _, s := range list {
			got = append(got, s.TraceID[31:])
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("?%s: %v, want %v", tc.query, got, tc.want)
		}
	}
	var svcs struct{ Services []ServiceOperations }
	getJSON(t, base+"/v1/traces/services", http.StatusOK, &svcs)
	if len(svcs.Services) != 2 || svcs.Services[0].Service != "gateway" ||
		len(svcs.Services[0].Operations) != 2 || svcs.Services[1].Operations[0] != "GET /api/{service}/*" {
		t.Errorf("services %+v", svcs.Services)
	}
}

func TestTraceSearchRejectsBadQueries(t *testing.T) {
	_, base, _ := searchFixture(t)
	for _, q := range []string{"minDuration=fast", "maxDuration=-1s", "from=yesterday", "to=2025-13-01T00:00:00Z",
		"lookback=0s", "errors=maybe", "limit=0", "limit=1001"} {
		var p map[string]any
		getJSON(t, base+"/v1/traces?"+q, http.StatusBadRequest, &p)
		if p["type"] == nil || p["detail"] == nil {
			t.Errorf("?%s: problem %v", q, p)
		}
	}
}

// TestStoreProcessorKeepsResourceAndScope: spans ended in the process keep
// their resource (converted once per provider) and scope.
func TestStoreProcessorKeepsResourceAndScope(t *testing.T) {
	store := NewStore(StoreConfig{})
	res := resource.NewSchemaless(attribute.String("service.name", "node"), attribute.String("service.version", "9.9"))
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSpanProcessor(store.Processor()))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	_, a := tp.Tracer("lib/a").Start(context.Background(), "a")
	a.End()
	_, b := tp.Tracer("lib/b").Start(context.Background(), "b")
	b.End()
	da, _ := store.Get(a.SpanContext().TraceID().String())
	db, _ := store.Get(b.SpanContext().TraceID().String())
	if len(da.Spans) != 1 || len(db.Spans) != 1 {
		t.Fatalf("stored %+v %+v", da, db)
	}
	sa, sb := da.Spans[0], db.Spans[0]
	if sa.Service != "node" || sa.Resource["service.version"] != "9.9" || sa.Scope.Name != "lib/a" || sb.Scope.Name != "lib/b" {
		t.Errorf("span a %+v, b %+v", sa, sb)
	}
}

// FuzzTraceQuery: any query string is either rejected or gives a query
// within bounds.
func FuzzTraceQuery(f *testing.F) {
	for _, seed := range []string{"service=a&operation=GET+/x&minDuration=5ms&maxDuration=1s&errors=true&limit=50",
		"from=2025-03-01T12:00:00Z&to=2025-03-01T13:00:00.5Z", "lookback=1h", "limit=abc", "minDuration=-1s", "%zz"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		r, err := http.NewRequest("GET", "/v1/traces?"+raw, nil)
		if err != nil {
			return
		}
		q, p := parseQuery(r)
		if p != nil {
			if p.Status != http.StatusBadRequest {
				t.Fatalf("status %d", p.Status)
			}
			return
		}
		if q.Limit < 1 || q.Limit > maxListLimit || q.MinDuration < 0 || q.MaxDuration < 0 ||
			len(q.Service) > 128 || len(q.Operation) > 256 {
			t.Fatalf("accepted %q as %+v", raw, q)
		}
	})
}
