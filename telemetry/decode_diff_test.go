package telemetry

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// decodeGeneric is the straightforward reference decoder: parse into
// generic values, rewrite the id fields, re-encode, protojson. The fuzzer
// checks that the one-pass decoder agrees with it.
func decodeGeneric(body []byte) (*coltracepb.ExportTraceServiceRequest, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data")
	}
	var walk func(v any) error
	walk = func(v any) error {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if n, ok := idLen[k]; ok {
					if s, ok := e.(string); ok {
						if s == "" {
							continue
						}
						b, err := decodeHexID(k, s, n)
						if err != nil {
							return err
						}
						x[k] = b
						continue
					}
				}
				if err := walk(e); err != nil {
					return err
				}
			}
		case []any:
			for _, e := range x {
				if err := walk(e); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(v); err != nil {
		return nil, err
	}
	fixed, _ := json.Marshal(v)
	req := &coltracepb.ExportTraceServiceRequest{}
	return req, (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(fixed, req)
}

func FuzzDecodeJSONMatchesReference(f *testing.F) {
	f.Add([]byte(specJSON))
	f.Add([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId" : "5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"a\"traceId\":"}]}]}]}`))
	f.Add([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":null,"spanId":"eee19b7ec3c1b174"}]}]}]}`))
	f.Add([]byte(`{"resourceSpans":[{"resource":{"attributes":[{"key":"traceId","value":{"stringValue":"zz"}}]}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeExport(b, ContentTypeJSON)
		want, werr := decodeGeneric(b)
		if err == nil && werr == nil && !proto.Equal(got, want) {
			t.Fatalf("decoders disagree on %q", b)
		}
	})
}

func TestDecodeJSONTrickyStrings(t *testing.T) {
	t.Parallel()
	body := `{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"say \"spanId\": \"x\"","traceId" :
	 "5B8EFFF798038103D269B633813FC60C","spanId":"eee19b7ec3c1b174","parentSpanId":""}]}]}]}`
	req, err := DecodeExport([]byte(body), ContentTypeJSON)
	if err != nil {
		t.Fatal(err)
	}
	sp := req.ResourceSpans[0].ScopeSpans[0].Spans[0]
	if sp.Name != `say "spanId": "x"` || base64.StdEncoding.EncodeToString(sp.SpanId) != "7uGbfsPBsXQ=" || len(sp.ParentSpanId) != 0 {
		t.Fatalf("span %v", sp)
	}
}
