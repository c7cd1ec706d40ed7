package docs_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/plexushq/plexus/docs"
)

// The listeners an operation is served on (x-plexus-listener).
const (
	admin   = "admin"
	gateway = "gateway"
)

// operation is one method of one path of the spec, as a listener serves it.
type operation struct {
	listener string
	route    *routers.Route
	// finder is the ServeMux pattern that finds the operation for a
	// request: the spec path, with "{x...}" where x-plexus-route says the
	// parameter takes the rest of the path and "{$}" after a trailing "/".
	finder string
	// mounted is the pattern the node registers for it: x-plexus-route, or
	// the method and the spec path.
	mounted string
}

// contract is docs/openapi.yaml, loaded and validated, with a router per
// listener built from its paths.
type contract struct {
	doc     *openapi3.T
	ops     []*operation
	finders map[string]*http.ServeMux

	mu     sync.Mutex
	called map[*operation][]int // statuses seen per operation
}

var (
	loadOnce sync.Once
	loaded   *contract
	loadErr  error
)

// loadContract loads the embedded spec once per test binary.
func loadContract(t *testing.T) *contract {
	t.Helper()
	loadOnce.Do(func() { loaded, loadErr = newContract() })
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	return loaded
}

func newContract() (*contract, error) {
	registerDecoders()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(docs.OpenAPI)
	if err != nil {
		return nil, fmt.Errorf("load docs/openapi.yaml: %w", err)
	}
	if err := doc.Validate(loader.Context, openapi3.EnableExamplesValidation()); err != nil {
		return nil, fmt.Errorf("docs/openapi.yaml is not a valid OpenAPI document: %w", err)
	}
	c := &contract{doc: doc, finders: map[string]*http.ServeMux{admin: http.NewServeMux(), gateway: http.NewServeMux()},
		called: map[*operation][]int{}}
	for _, path := range doc.Paths.InMatchingOrder() {
		item := doc.Paths.Value(path)
		for method, op := range item.Operations() {
			listeners, err := stringsExt(op.Extensions, "x-plexus-listener")
			if err != nil || len(listeners) == 0 {
				return nil, fmt.Errorf("%s %s: x-plexus-listener: want a list of admin, gateway (%v)", method, path, err)
			}
			for _, l := range listeners {
				o, err := c.add(l, path, method, item, op)
				if err != nil {
					return nil, err
				}
				c.ops = append(c.ops, o)
			}
		}
	}
	return c, nil
}

// add builds one operation and registers its finder pattern.
func (c *contract) add(listener, path, method string, item *openapi3.PathItem, op *openapi3.Operation) (*operation, error) {
	mux, ok := c.finders[listener]
	if !ok {
		return nil, fmt.Errorf("%s %s: unknown listener %q", method, path, listener)
	}
	o := &operation{listener: listener,
		route: &routers.Route{Spec: c.doc, Path: path, PathItem: item, Method: method, Operation: op}}
	o.mounted = method + " " + path
	finderPath := path
	if r, ok := op.Extensions["x-plexus-route"].(string); ok {
		if strings.HasPrefix(r, "/") {
			r = method + " " + r
		}
		o.mounted = r
		_, rpath, _ := strings.Cut(r, " ")
		if strings.HasSuffix(rpath, "...}") {
			finderPath = rpath
		}
	}
	if strings.HasSuffix(finderPath, "/") {
		finderPath += "{$}"
	}
	o.finder = method + " " + finderPath
	mux.HandleFunc(o.finder, func(w http.ResponseWriter, r *http.Request) {
		f := w.(*found)
		f.op = o
		f.params = map[string]string{}
		for _, p := range item.Parameters {
			if p.Value.In == openapi3.ParameterInPath {
				f.params[p.Value.Name] = r.PathValue(p.Value.Name)
			}
		}
		for _, p := range op.Parameters {
			if p.Value.In == openapi3.ParameterInPath {
				f.params[p.Value.Name] = r.PathValue(p.Value.Name)
			}
		}
	})
	return o, nil
}

func stringsExt(ext map[string]any, key string) ([]string, error) {
	raw, ok := ext[key].([]any)
	if !ok {
		return nil, fmt.Errorf("missing")
	}
	out := make([]string, len(raw))
	for i, v := range raw {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%v is not a string", v)
		}
		out[i] = s
	}
	return out, nil
}

// found is the ResponseWriter a finder mux writes the matched operation to.
type found struct {
	http.ResponseWriter
	op     *operation
	params map[string]string
}

// find returns the operation of the spec that serves r on listener.
func (c *contract) find(listener string, r *http.Request) (*operation, map[string]string) {
	f := &found{ResponseWriter: discard{}}
	c.finders[listener].ServeHTTP(f, r)
	return f.op, f.params
}

type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}

var decodersOnce sync.Once

// registerDecoders lets openapi3filter read the bodies that are not JSON:
// as strings, which the spec's {type: string} schemas then accept.
func registerDecoders() {
	decodersOnce.Do(func() {
		raw := func(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
			b, err := io.ReadAll(body)
			return string(b), err
		}
		for _, ct := range []string{"application/x-protobuf", "application/yaml", "text/html", "text/css",
			"text/javascript", "text/event-stream", "application/openmetrics-text", "*/*"} {
			openapi3filter.RegisterBodyDecoder(ct, raw)
		}
		// NDJSON: the lines as a JSON array, so the spec's schema (an array
		// of its items) checks every line.
		openapi3filter.RegisterBodyDecoder("application/x-ndjson",
			func(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
				var lines []any
				sc := bufio.NewScanner(body)
				sc.Buffer(make([]byte, 64<<10), 16<<20)
				for sc.Scan() {
					var v any
					if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
						return nil, fmt.Errorf("NDJSON line %d: %w", len(lines)+1, err)
					}
					lines = append(lines, v)
				}
				return lines, sc.Err()
			})
	})
}

// call is one request of a contract test.
type call struct {
	listener string
	method   string
	path     string // with the query
	token    string
	body     []byte
	header   http.Header
	// invalid marks a request the spec itself forbids (a bad name, a
	// malformed body): its request is not validated, only the answer.
	invalid bool
	// want is the expected status.
	want int
}

// noRedirects shows redirects as they are answered.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// answer is what the node said.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the answer's body into a generic value.
func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("answer is not a JSON object: %v: %s", err, a.body)
	}
	return m
}

// do validates the request against the spec, sends it to the node at
// base, checks the status, and validates the answer against the spec.
func (c *contract) do(t *testing.T, base string, k call) answer {
	t.Helper()
	req := k.request(t, base)
	op, params := c.find(k.listener, req)
	if op == nil {
		t.Fatalf("%s %s: no operation of docs/openapi.yaml serves it on the %s listener", k.method, k.path, k.listener)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: op.route,
		Options: &openapi3filter.Options{SkipSettingDefaults: true, MultiError: true,
			AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	if !k.invalid {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			t.Errorf("%s %s: request does not follow the spec: %v", k.method, k.path, err)
		}
	}
	resp, err := noRedirects.Do(k.request(t, base))
	if err != nil {
		t.Fatalf("%s %s: %v", k.method, k.path, err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	if resp.Header.Get("Content-Type") == "text/event-stream" {
		a.body = readEvents(t, op, resp.Body)
	} else if a.body, err = io.ReadAll(resp.Body); err != nil {
		t.Fatalf("%s %s: reading the answer: %v", k.method, k.path, err)
	}
	c.record(op, a.status)
	if a.status != k.want {
		t.Errorf("%s %s: status %d, want %d: %s", k.method, k.path, a.status, k.want, clip(a.body))
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: a.status, Header: a.header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}}
	out.SetBodyBytes(a.body)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Errorf("%s %s: %d answer does not follow the spec: %v\n%s", k.method, k.path, a.status, err, clip(a.body))
	}
	c.checkRetryAfter(t, k, a)
	return a
}

// checkRetryAfter holds every answer to the convention the spec states
// once for all: a Retry-After header comes with the same retryAfter member.
func (c *contract) checkRetryAfter(t *testing.T, k call, a answer) {
	t.Helper()
	ra := a.header.Get("Retry-After")
	if a.header.Get("Content-Type") != "application/problem+json" {
		return
	}
	var p struct {
		RetryAfter *int `json:"retryAfter"`
	}
	_ = json.Unmarshal(a.body, &p)
	switch {
	case ra == "" && p.RetryAfter != nil:
		t.Errorf("%s %s: retryAfter %d in the body without a Retry-After header", k.method, k.path, *p.RetryAfter)
	case ra != "" && (p.RetryAfter == nil || fmt.Sprint(*p.RetryAfter) != ra):
		t.Errorf("%s %s: Retry-After %s without the same retryAfter member: %s", k.method, k.path, ra, clip(a.body))
	}
}

func (k call) request(t *testing.T, base string) *http.Request {
	t.Helper()
	var body io.Reader
	if k.body != nil {
		body = bytes.NewReader(k.body)
	}
	req, err := http.NewRequest(k.method, base+k.path, body)
	if err != nil {
		t.Fatal(err)
	}
	for h, vs := range k.header {
		req.Header[h] = vs
	}
	if k.body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if k.token != "" {
		req.Header.Set("Authorization", "Bearer "+k.token)
	}
	return req
}

func (c *contract) record(op *operation, status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.called[op] = append(c.called[op], status)
}

// untested lists the operations no test called with a 2xx (or 3xx) answer.
func (c *contract) untested() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, o := range c.ops {
		if !slices.ContainsFunc(c.called[o], func(s int) bool { return s < 400 }) {
			out = append(out, o.listener+" "+o.route.Method+" "+o.route.Path)
		}
	}
	slices.Sort(out)
	return out
}

// readEvents reads a server-sent event stream until it has seen the first
// frames the test needs (all stored ones, up to a short idle pause), checks
// each frame's data against the schema x-plexus-sse names for its event
// name, and returns the raw text read.
func readEvents(t *testing.T, op *operation, body io.Reader) []byte {
	t.Helper()
	schemas, _ := op.route.Operation.Extensions["x-plexus-sse"].(map[string]any)
	if schemas == nil {
		t.Fatalf("%s %s answers text/event-stream without x-plexus-sse", op.route.Method, op.route.Path)
	}
	lines, done := make(chan string), make(chan struct{})
	defer close(done)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(body)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-done:
				return
			}
		}
	}()
	var raw bytes.Buffer
	event, frames := "message", 0
	idle := time.NewTimer(5 * time.Second) // the first frame may take a moment
	defer idle.Stop()
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				return raw.Bytes()
			}
			raw.WriteString(line + "\n")
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				checkFrame(t, op, schemas, event, strings.TrimPrefix(line, "data: "))
				frames++
			case line == "":
				event = "message"
				idle.Reset(300 * time.Millisecond)
			}
		case <-idle.C:
			if frames == 0 {
				t.Errorf("%s %s: no event within 5s", op.route.Method, op.route.Path)
			}
			return raw.Bytes() // the caller closes the body, which ends the reader
		}
	}
}

func checkFrame(t *testing.T, op *operation, schemas map[string]any, event, data string) {
	t.Helper()
	name, _ := schemas[event].(string)
	ref := op.route.Spec.Components.Schemas[name]
	if ref == nil {
		t.Errorf("%s %s: event %q has no schema in x-plexus-sse", op.route.Method, op.route.Path, event)
		return
	}
	var v any
	if err := json.Unmarshal([]byte(data), &v); err != nil {
		t.Errorf("%s %s: event %q data is not JSON: %v", op.route.Method, op.route.Path, event, err)
		return
	}
	if err := ref.Value.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
		t.Errorf("%s %s: event %q does not follow %s: %v", op.route.Method, op.route.Path, event, name, err)
	}
}

func clip(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "…"
	}
	return string(b)
}
