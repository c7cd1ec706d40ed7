package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
)

// DefaultMaxBody bounds admin request bodies unless a handler says otherwise.
const DefaultMaxBody = 1 << 20

// DecodeJSON reads one JSON value from r's body into dst, strictly: the
// content type must be JSON (415), the body at most maxBytes (413, default
// DefaultMaxBody), no unknown fields, no trailing data, no syntax or type
// errors (400). The returned error is a *Problem ready for WriteProblem.
func DecodeJSON(w http.ResponseWriter, r *http.Request, dst any, maxBytes int64) *Problem {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBody
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !(mt == "application/json" || (len(mt) > 5 && mt[len(mt)-5:] == "+json")) {
			return NewProblem(http.StatusUnsupportedMediaType, "unsupported-media-type",
				fmt.Sprintf("content type %q is not application/json", ct))
		}
	}
	body := http.MaxBytesReader(w, r.Body, maxBytes)
	data, err := io.ReadAll(body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return NewProblem(http.StatusRequestEntityTooLarge, "body-too-large",
				fmt.Sprintf("request body is larger than %d bytes", maxBytes))
		}
		return NewProblem(http.StatusBadRequest, "bad-body", "reading request body: "+err.Error())
	}
	return DecodeJSONBytes(data, dst)
}

// DecodeJSONBytes is DecodeJSON's strict decoding of an already read body.
func DecodeJSONBytes(data []byte, dst any) *Problem {
	if len(bytes.TrimSpace(data)) == 0 {
		return NewProblem(http.StatusBadRequest, "bad-json", "request body is empty; want a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return NewProblem(http.StatusBadRequest, "bad-json", describeJSONError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return NewProblem(http.StatusBadRequest, "bad-json", "request body has data after the JSON value")
	}
	return nil
}

func describeJSONError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("malformed JSON at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("field %q: want %s, got JSON %s", typ.Field, typ.Type, typ.Value)
		}
		return fmt.Sprintf("want %s, got JSON %s", typ.Type, typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "malformed JSON: unexpected end of body"
	default:
		// Unknown fields come back as `json: unknown field "x"`.
		return err.Error()
	}
}

// WriteJSON sends v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		WriteError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
