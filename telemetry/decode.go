package telemetry

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Content types of OTLP/HTTP.
const (
	ContentTypeProtobuf = "application/x-protobuf"
	ContentTypeJSON     = "application/json"
)

// ErrUnsupportedMedia is returned for a content type that is neither OTLP
// protobuf nor OTLP JSON.
var ErrUnsupportedMedia = errors.New("unsupported content type: want application/x-protobuf or application/json")

// ErrMalformed wraps every decoding failure of an export body.
var ErrMalformed = errors.New("malformed OTLP export")

// mediaType returns the normalized OTLP media type of a Content-Type value.
func mediaType(contentType string) (string, error) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return "", ErrUnsupportedMedia
	}
	switch mt {
	case ContentTypeProtobuf, "application/protobuf":
		return ContentTypeProtobuf, nil
	case ContentTypeJSON:
		return ContentTypeJSON, nil
	}
	return "", ErrUnsupportedMedia
}

// DecodeExport decodes an OTLP/HTTP trace export body of the given media
// type (ContentTypeProtobuf or ContentTypeJSON).
func DecodeExport(body []byte, media string) (*coltracepb.ExportTraceServiceRequest, error) {
	req := &coltracepb.ExportTraceServiceRequest{}
	switch media {
	case ContentTypeProtobuf:
		if err := proto.Unmarshal(body, req); err != nil {
			return nil, fmt.Errorf("%w: protobuf: %w", ErrMalformed, err)
		}
	case ContentTypeJSON:
		if err := decodeOTLPJSON(body, req); err != nil {
			return nil, err
		}
	default:
		return nil, ErrUnsupportedMedia
	}
	return req, nil
}

// decodeOTLPJSON reads OTLP JSON. OTLP JSON differs from canonical protobuf
// JSON in one way protojson does not know: trace and span ids are hex
// strings, not base64. The body is parsed once into generic values, the id
// fields are rewritten from hex to base64, and the result goes to protojson
// (which takes enums as integers or names, 64-bit integers as strings or
// numbers, and ignores unknown fields as the spec asks receivers to do).
func decodeOTLPJSON(body []byte, req *coltracepb.ExportTraceServiceRequest) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("%w: JSON: %w", ErrMalformed, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: JSON: data after the top-level value", ErrMalformed)
	}
	if _, ok := v.(map[string]any); !ok {
		return fmt.Errorf("%w: JSON: top-level value must be an object", ErrMalformed)
	}
	if err := hexIDsToBase64(v, 0); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	fixed, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%w: JSON: %w", ErrMalformed, err)
	}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(fixed, req); err != nil {
		return fmt.Errorf("%w: JSON: %w", ErrMalformed, err)
	}
	return nil
}

// idLen is the byte length of each id field of OTLP JSON.
var idLen = map[string]int{"traceId": 16, "spanId": 8, "parentSpanId": 8}

const maxJSONDepth = 64

func hexIDsToBase64(v any, depth int) error {
	if depth > maxJSONDepth {
		return errors.New("JSON nested too deeply")
	}
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if n, ok := idLen[k]; ok {
				if s, ok := e.(string); ok {
					b, err := decodeHexID(k, s, n)
					if err != nil {
						return err
					}
					x[k] = b
					continue
				}
			}
			if err := hexIDsToBase64(e, depth+1); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range x {
			if err := hexIDsToBase64(e, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// decodeHexID turns a hex id into the base64 protojson expects; an empty
// string stays empty (a root span's parentSpanId).
func decodeHexID(field, s string, n int) (string, error) {
	if s == "" {
		return "", nil
	}
	if len(s) != 2*n {
		return "", fmt.Errorf("%s %q: want %d hex digits", field, clipID(s), 2*n)
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return "", fmt.Errorf("%s %q: want %d hex digits", field, clipID(s), 2*n)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

func clipID(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
