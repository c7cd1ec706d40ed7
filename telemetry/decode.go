package telemetry

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
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
// strings, not base64. One pass over the bytes rewrites the values of the
// traceId, spanId and parentSpanId keys from hex to base64 (copying
// everything else verbatim), and protojson does the rest: it validates the
// JSON, takes enums as integers or names and 64-bit integers as strings or
// numbers, and ignores unknown fields as the specification asks receivers to.
func decodeOTLPJSON(body []byte, req *coltracepb.ExportTraceServiceRequest) error {
	fixed, err := hexIDsToBase64(body)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(fixed, req); err != nil {
		return fmt.Errorf("%w: JSON: %w", ErrMalformed, err)
	}
	return nil
}

// idLen is the byte length of each id field of OTLP JSON.
var idLen = map[string]int{"traceId": 16, "spanId": 8, "parentSpanId": 8}

// hexIDsToBase64 copies b, rewriting the string values of id keys. It only
// tokenizes strings; anything malformed elsewhere is left for protojson.
func hexIDsToBase64(b []byte) ([]byte, error) {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		if b[i] != '"' {
			out = append(out, b[i])
			i++
			continue
		}
		end, escaped := scanString(b, i)
		if end < 0 {
			return append(out, b[i:]...), nil // unterminated: protojson reports it
		}
		key := b[i+1 : end-1]
		out = append(out, b[i:end]...)
		i = end
		colon := skipSpace(b, i)
		n, isID := idLen[string(key)]
		if escaped || !isID || colon >= len(b) || b[colon] != ':' {
			continue
		}
		v := skipSpace(b, colon+1)
		out = append(out, b[i:v]...)
		i = v
		if v >= len(b) || b[v] != '"' {
			continue // not a string (null, a number…): protojson decides
		}
		vend, vesc := scanString(b, v)
		if vend < 0 || vesc {
			return nil, fmt.Errorf("%s: want %d hex digits", key, 2*n)
		}
		enc, err := decodeHexID(string(key), string(b[v+1:vend-1]), n)
		if err != nil {
			return nil, err
		}
		out = append(append(append(out, '"'), enc...), '"')
		i = vend
	}
	return out, nil
}

// scanString returns the index after the JSON string starting at b[i] (a
// quote) and whether it has escapes; -1 when it is not terminated.
func scanString(b []byte, i int) (int, bool) {
	escaped := false
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			return j + 1, escaped
		}
	}
	return -1, escaped
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
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
