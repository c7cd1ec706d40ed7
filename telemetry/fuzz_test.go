package telemetry

import (
	"testing"

	"google.golang.org/protobuf/proto"
)

func FuzzDecodeJSON(f *testing.F) {
	f.Add([]byte(specJSON))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"","spanId":""}]}]}]}`))
	f.Add([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz","spanId":1}]}]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := DecodeExport(b, ContentTypeJSON)
		if err != nil {
			return
		}
		spans, _ := spansFromRequest(req)
		s := NewStore(StoreConfig{MaxBytes: 1 << 20})
		s.Add(spans...)
		for _, sp := range spans {
			if len(sp.TraceID) != 32 || len(sp.SpanID) != 16 {
				t.Fatalf("bad ids accepted: %+v", sp)
			}
		}
	})
}

func FuzzDecodeProtobuf(f *testing.F) {
	req, err := DecodeExport([]byte(specJSON), ContentTypeJSON)
	if err != nil {
		f.Fatal(err)
	}
	seed, _ := proto.Marshal(req)
	f.Add(seed)
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x02, 0x12, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := DecodeExport(b, ContentTypeProtobuf)
		if err != nil {
			return
		}
		spans, _ := spansFromRequest(req)
		NewStore(StoreConfig{MaxBytes: 1 << 20}).Add(spans...)
	})
}
