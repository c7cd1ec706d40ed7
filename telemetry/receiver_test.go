package telemetry

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

func newReceiver(t *testing.T, cfg StoreConfig) (*Store, *httptest.Server) {
	store, srv, _ := newReceiverWithMetrics(t, cfg)
	return store, srv
}

func newReceiverWithMetrics(t *testing.T, cfg StoreConfig) (*Store, *httptest.Server, *prometheus.Registry) {
	t.Helper()
	store := NewStore(cfg)
	mux := http.NewServeMux()
	reg := prometheus.NewRegistry()
	NewAPI(store, APIConfig{MaxBodyBytes: 1 << 20, Metrics: reg}).Mount(mux.Handle)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return store, srv, reg
}

// emit produces a small trace (root server span, child client span with an
// error, event and attributes) through a real SDK and OTLP/HTTP exporter.
func emit(t *testing.T, exp sdktrace.SpanExporter, service string) trace.TraceID {
	t.Helper()
	res := resource.NewSchemaless(attribute.String("service.name", service), attribute.String("service.version", "1.2.3"),
		attribute.String("deployment.environment.name", "staging"))
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSyncer(exp))
	tr := tp.Tracer("test", trace.WithInstrumentationVersion("0.1.0"))
	ctx, root := tr.Start(context.Background(), "GET /orders", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.Int("http.status_code", 200), attribute.StringSlice("tags", []string{"a", "b"})))
	_, child := tr.Start(ctx, "call inventory", trace.WithSpanKind(trace.SpanKindClient))
	child.AddEvent("retry", trace.WithAttributes(attribute.Int("attempt", 2)))
	child.SetStatus(codes.Error, "upstream 503")
	time.Sleep(2 * time.Millisecond)
	child.End()
	root.End()
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatalf("exporter shutdown: %v", err)
	}
	return root.SpanContext().TraceID()
}

func TestReceiverRealExporter(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		opts []otlptracehttp.Option
	}{
		{"protobuf", nil},
		{"protobuf-gzip", []otlptracehttp.Option{otlptracehttp.WithCompression(otlptracehttp.GzipCompression)}},
		{"json", []otlptracehttp.Option{otlptracehttp.WithEncoding(otlptracehttp.EncodingJSON)}},
		{"json-gzip", []otlptracehttp.Option{otlptracehttp.WithEncoding(otlptracehttp.EncodingJSON),
			otlptracehttp.WithCompression(otlptracehttp.GzipCompression)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			store, srv := newReceiver(t, StoreConfig{})
			opts := append([]otlptracehttp.Option{otlptracehttp.WithEndpointURL(srv.URL + "/v1/traces"),
				otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false})}, tc.opts...)
			exp, err := otlptracehttp.New(context.Background(), opts...)
			if err != nil {
				t.Fatal(err)
			}
			tid := emit(t, exp, "orders-"+tc.name)
			checkStoredTrace(t, srv.URL, tid, "orders-"+tc.name)
			if st := store.Stats(); st.SpansAdded != 2 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func checkStoredTrace(t *testing.T, base string, tid trace.TraceID, service string) {
	t.Helper()
	var got TraceDetail
	getJSON(t, base+"/v1/traces/"+tid.String(), http.StatusOK, &got)
	if got.TraceID != tid.String() || len(got.Spans) != 2 {
		t.Fatalf("trace %s: %+v", tid, got)
	}
	root, child := got.Spans[0], got.Spans[1]
	if root.ParentSpanID != "" || child.ParentSpanID != root.SpanID || root.Service != service {
		t.Fatalf("parent links wrong: root %+v child %+v", root, child)
	}
	if root.Kind != "server" || child.Kind != "client" || root.Name != "GET /orders" {
		t.Fatalf("kinds/names: %+v %+v", root, child)
	}
	if child.Status != StatusError || child.StatusMessage != "upstream 503" || len(child.Events) != 1 || child.Events[0].Name != "retry" {
		t.Fatalf("child status/events: %+v", child)
	}
	if child.Duration < 2*time.Millisecond {
		t.Fatalf("child duration %v", child.Duration)
	}
	if v, ok := root.Attributes["http.status_code"].(float64); !ok || v != 200 {
		t.Fatalf("attributes %#v", root.Attributes)
	}
	if child.Resource["service.version"] != "1.2.3" || child.Resource["deployment.environment.name"] != "staging" ||
		child.Resource["service.name"] != service || child.Scope == nil || *child.Scope != (Scope{Name: "test", Version: "0.1.0"}) {
		t.Fatalf("resource %v and scope %+v not kept", child.Resource, child.Scope)
	}
	var list []TraceSummary
	getJSON(t, base+"/v1/traces?errors=true&service="+service, http.StatusOK, &list)
	if len(list) != 1 || list[0].RootOperation != "GET /orders" || list[0].Errors != 1 || list[0].Spans != 2 || list[0].RootService != service {
		t.Fatalf("list %+v", list)
	}
}

func getJSON(t *testing.T, url string, want int, dst any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %d, want %d", url, resp.StatusCode, want)
	}
	if dst != nil {
		if err := json.NewDecoder(resp.Body).Decode(dst); err != nil {
			t.Fatal(err)
		}
	}
}

func post(t *testing.T, url, ctype, enc string, body []byte) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	if enc != "" {
		req.Header.Set("Content-Encoding", enc)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

const specJSON = `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"billing"}}]},
 "scopeSpans":[{"scope":{"name":"x"},"spans":[
 {"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174","parentSpanId":"","name":"charge",
  "kind":2,"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":1544712661000000000,
  "attributes":[{"key":"amount","value":{"intValue":"42"}}],"status":{"code":2,"message":"declined"},"unknownField":1},
 {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b175","parentSpanId":"eee19b7ec3c1b174","name":"db",
  "kind":"SPAN_KIND_CLIENT","startTimeUnixNano":"1544712660100000000","endTimeUnixNano":"1544712660200000000",
  "links":[{"traceId":"00000000000000000000000000000001","spanId":"0000000000000001"}]}]}]}]}`

func TestReceiverSpecJSON(t *testing.T) {
	t.Parallel()
	store, srv := newReceiver(t, StoreConfig{})
	if resp := post(t, srv.URL+"/v1/traces", "application/json; charset=utf-8", "", []byte(specJSON)); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	d, ok := store.Get("5b8efff798038103d269b633813fc60c")
	if !ok || len(d.Spans) != 2 {
		t.Fatalf("stored %+v", d)
	}
	if d.Summary.Duration != time.Second || d.Summary.RootService != "billing" || d.Summary.Errors != 1 {
		t.Fatalf("summary %+v", d.Summary)
	}
	if d.Spans[1].ParentSpanID != "eee19b7ec3c1b174" || d.Spans[1].Kind != "client" || len(d.Spans[1].Links) != 1 {
		t.Fatalf("child %+v", d.Spans[1])
	}
	if d.Spans[0].Attributes["amount"] != int64(42) {
		t.Fatalf("attrs %#v", d.Spans[0].Attributes)
	}
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

func TestReceiverRejectsMalformed(t *testing.T) {
	t.Parallel()
	store, srv, reg := newReceiverWithMetrics(t, StoreConfig{})
	big := gz(bytes.Repeat([]byte(" "), 2<<20)) // 2 MiB of spaces: small compressed, too big inflated
	cases := []struct {
		name, ctype, enc string
		body             []byte
		want             int
	}{
		{"garbage protobuf", ContentTypeProtobuf, "", []byte{0xff, 0xff, 0xff, 0xff}, 400},
		{"syntax JSON", ContentTypeJSON, "", []byte(`{"resourceSpans":[`), 400},
		{"base64 ids", ContentTypeJSON, "", []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"W47/95gDgQPSabYzgT/GDA==","spanId":"7uGbfsPBsXQ="}]}]}]}`), 400},
		{"short span id", ContentTypeJSON, "", []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"ab"}]}]}]}`), 400},
		{"wrong type", ContentTypeJSON, "", []byte(`{"resourceSpans":{"a":1}}`), 400},
		{"array top", ContentTypeJSON, "", []byte(`[]`), 400},
		{"trailing", ContentTypeJSON, "", []byte(`{} {}`), 400},
		{"bad gzip", ContentTypeProtobuf, "gzip", []byte("not gzip"), 400},
		{"gzip bomb", ContentTypeJSON, "gzip", big, 413},
		{"too large", ContentTypeJSON, "", bytes.Repeat([]byte(" "), 2<<20), 413},
		{"media", "text/plain", "", []byte("{}"), 415},
		{"encoding", ContentTypeJSON, "br", []byte("{}"), 415},
	}
	for _, tc := range cases {
		resp := post(t, srv.URL+"/v1/traces", tc.ctype, tc.enc, tc.body)
		if resp.StatusCode != tc.want || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
			t.Errorf("%s: %d %s, want %d problem", tc.name, resp.StatusCode, resp.Header.Get("Content-Type"), tc.want)
		}
	}
	if st := store.Stats(); st.Traces != 0 || st.SpansAdded != 0 {
		t.Fatalf("malformed input changed the store: %+v", st)
	}
	if n := counterValue(t, reg, "json", "rejected"); n != 9 {
		t.Fatalf("rejected JSON exports counted %v, want 9", n)
	}
	for url, want := range map[string]int{
		"/v1/traces/nothex": 400, "/v1/traces/5b8efff798038103d269b633813fc60c": 404,
		"/v1/traces?limit=0": 400, "/v1/traces?minDuration=x": 400, "/v1/traces?errors=maybe": 400,
	} {
		getJSON(t, srv.URL+url, want, nil)
	}
}

func counterValue(t *testing.T, reg *prometheus.Registry, enc, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if mf.GetName() == "plexus_telemetry_exports_total" && labels["encoding"] == enc && labels["result"] == result {
				v += m.GetCounter().GetValue()
			}
		}
	}
	return v
}

func TestStoreMemoryBound(t *testing.T) {
	t.Parallel()
	const maxBytes = 256 << 10
	store, srv := newReceiver(t, StoreConfig{MaxBytes: maxBytes, MaxTraces: 100000})
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(srv.URL+"/v1/traces"))
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp, sdktrace.WithMaxExportBatchSize(256)))
	tr := tp.Tracer("bound")
	payload := strings.Repeat("x", 1000)
	var first, last trace.TraceID
	for i := range 2000 {
		_, s := tr.Start(context.Background(), fmt.Sprintf("op-%d", i), trace.WithAttributes(attribute.String("payload", payload)))
		s.End()
		if i == 0 {
			first = s.SpanContext().TraceID()
		}
		last = s.SpanContext().TraceID()
		if i%256 == 0 {
			_ = tp.ForceFlush(context.Background())
			if st := store.Stats(); st.Bytes > maxBytes {
				t.Fatalf("store holds %d bytes > bound %d", st.Bytes, maxBytes)
			}
		}
	}
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := store.Stats()
	if st.Bytes > maxBytes || st.TracesEvicted == 0 || st.Traces < 50 {
		t.Fatalf("stats %+v", st)
	}
	if _, ok := store.Get(first.String()); ok {
		t.Fatal("oldest trace was not evicted")
	}
	if _, ok := store.Get(last.String()); !ok {
		t.Fatal("newest trace was evicted")
	}
}

func TestStoreCountBoundAndDuplicates(t *testing.T) {
	t.Parallel()
	s := NewStore(StoreConfig{MaxTraces: 3, MaxSpansPerTrace: 2})
	mk := func(tid, sid, parent string, start int) Span {
		sp := Span{TraceID: tid, SpanID: sid, ParentSpanID: parent, Service: "s", Name: sid, Status: StatusUnset}
		sp.setTimes(time.Unix(int64(start), 0), time.Unix(int64(start)+1, 0))
		return sp
	}
	for i := range 5 {
		s.Add(mk(fmt.Sprint("t", i), "a", "", i))
	}
	if st := s.Stats(); st.Traces != 3 || st.TracesEvicted != 2 {
		t.Fatalf("stats %+v", st)
	}
	if _, ok := s.Get("t1"); ok {
		t.Fatal("t1 should be evicted")
	}
	s.Add(mk("t2", "a", "", 2), mk("t2", "b", "a", 3), mk("t2", "c", "a", 3)) // dup + over per-trace cap
	d, _ := s.Get("t2")
	if len(d.Spans) != 2 || s.Stats().SpansDropped != 2 {
		t.Fatalf("spans %d stats %+v", len(d.Spans), s.Stats())
	}
	s.Add(mk("t5", "a", "", 9)) // t2 was just updated, so t3 goes
	if _, ok := s.Get("t3"); ok {
		t.Fatal("least recently updated trace t3 should be evicted")
	}
	list := s.List(Query{Limit: 2})
	if len(list) != 2 || list[0].TraceID != "t5" || list[1].TraceID != "t4" {
		t.Fatalf("list %+v", list)
	}
	if l := s.List(Query{MinDuration: 2 * time.Second}); len(l) != 1 || l[0].TraceID != "t2" {
		t.Fatalf("minDuration list %+v", l)
	}
}

func TestSetupWithStoreProcessor(t *testing.T) {
	t.Parallel()
	store := NewStore(StoreConfig{})
	p, err := Setup(context.Background(), Config{ServiceName: "node", Processors: []sdktrace.SpanProcessor{store.Processor()}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, s := p.TracerProvider().Tracer("t").Start(context.Background(), "parent")
	_, c := p.TracerProvider().Tracer("t").Start(ctx, "child")
	c.End()
	s.End()
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	d, ok := store.Get(s.SpanContext().TraceID().String())
	if !ok || len(d.Spans) != 2 || d.Summary.RootService != "node" || d.Summary.RootOperation != "parent" {
		t.Fatalf("got %+v", d)
	}
	if p.Exporter() != "" {
		t.Fatalf("exporter %q without endpoint", p.Exporter())
	}
}

func TestSetupExportsToEndpointAndHonoursEnv(t *testing.T) {
	store, srv := newReceiver(t, StoreConfig{})
	// Endpoint from the config when the environment names none.
	p, err := Setup(context.Background(), Config{ServiceName: "svc", Endpoint: srv.URL, SampleRatio: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, s := p.TracerProvider().Tracer("t").Start(context.Background(), "op")
	s.End()
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := store.Get(s.SpanContext().TraceID().String()); !ok || p.Exporter() != srv.URL+"/v1/traces" {
		t.Fatalf("span not exported to %s", p.Exporter())
	}
	// The standard variables win over the configured endpoint.
	envStore, envSrv := newReceiver(t, StoreConfig{})
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", envSrv.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
	p, err = Setup(context.Background(), Config{ServiceName: "svc", Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	_, s = p.TracerProvider().Tracer("t").Start(context.Background(), "op2")
	s.End()
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := envStore.Get(s.SpanContext().TraceID().String()); !ok {
		t.Fatal("OTEL_EXPORTER_OTLP_ENDPOINT not honoured")
	}
	if _, ok := store.Get(s.SpanContext().TraceID().String()); ok {
		t.Fatal("configured endpoint used although the environment names one")
	}
}

func TestSetupRejectsBadEndpointAndSamples(t *testing.T) {
	t.Parallel()
	if _, err := Setup(context.Background(), Config{Endpoint: "ftp://x"}); err == nil {
		t.Fatal("ftp endpoint accepted")
	}
	store := NewStore(StoreConfig{})
	p, err := Setup(context.Background(), Config{SampleRatio: -1, Processors: []sdktrace.SpanProcessor{store.Processor()}})
	if err != nil {
		t.Fatal(err)
	}
	_, s := p.TracerProvider().Tracer("t").Start(context.Background(), "op")
	s.End()
	_ = p.Shutdown(context.Background())
	if store.Stats().SpansAdded != 0 {
		t.Fatal("negative ratio sampled a span")
	}
}

func TestSetupWithoutDestinationIsNoop(t *testing.T) {
	t.Parallel()
	p, err := Setup(context.Background(), Config{ServiceName: "gw-only"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	parent := trace.ContextWithSpanContext(context.Background(), testSpanContext())
	_, s := p.TracerProvider().Tracer("t").Start(parent, "op")
	if s.IsRecording() || s.SpanContext().TraceID() != testSpanContext().TraceID() {
		t.Fatalf("want a non-recording span that keeps the caller's context, got %v", s.SpanContext())
	}
}

func TestStoreConcurrentUse(t *testing.T) {
	t.Parallel()
	s := NewStore(StoreConfig{MaxTraces: 50, MaxBytes: 64 << 10})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 500 {
				sp := Span{TraceID: fmt.Sprintf("%032x", i%80), SpanID: fmt.Sprintf("%016x", w*1000+i), Service: "s", Name: "op", Status: StatusOK}
				sp.setTimes(time.Unix(int64(i), 0), time.Unix(int64(i)+1, 0))
				s.Add(sp)
				s.List(Query{Service: "s", Limit: 5})
				s.Get(sp.TraceID)
			}
		})
	}
	wg.Wait()
	if st := s.Stats(); st.Traces > 50 || st.Bytes > 64<<10 || st.SpansAdded != 2000 {
		t.Fatalf("stats %+v", st)
	}
}
