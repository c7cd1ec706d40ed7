package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/plexushq/plexus/internal/httpguard"
)

// DefaultMaxBody bounds admin request bodies unless a handler says otherwise.
const DefaultMaxBody = 1 << 20

// answerAfterStall bounds writing the 408 that follows a stalled body.
const answerAfterStall = 10 * time.Second

// ReadBody reads a JSON request body, the one way every Plexus API does:
// a content type, when given, must be JSON (415), then ReadBytes.
func ReadBody(w http.ResponseWriter, r *http.Request, maxBytes int64) ([]byte, *Problem) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !(mt == "application/json" || strings.HasSuffix(mt, "+json")) {
			return nil, NewProblem(http.StatusUnsupportedMediaType, "unsupported-media-type",
				fmt.Sprintf("content type %q is not application/json", ct))
		}
	}
	return ReadBytes(w, r, maxBytes)
}

// ReadBytes reads a request body of any content type: at most maxBytes
// (413; default DefaultMaxBody), a body that stops arriving is 408
// (httpguard's idle deadline), a broken one 400 bad-body. r.Body may be a
// decoder over the wire's body (gzip): its errors are the body's.
func ReadBytes(w http.ResponseWriter, r *http.Request, maxBytes int64) ([]byte, *Problem) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBody
	}
	data, err := readAll(http.MaxBytesReader(w, r.Body, maxBytes), min(r.ContentLength, maxBytes, maxPresize))
	if err != nil {
		var mbe *http.MaxBytesError
		var ce *httpguard.ClientError
		switch {
		case errors.As(err, &mbe):
			return nil, NewProblem(http.StatusRequestEntityTooLarge, "body-too-large",
				fmt.Sprintf("request body is larger than %d bytes", maxBytes)).With("maxBodyBytes", maxBytes)
		case errors.As(err, &ce) && ce.Timeout():
			// The answer's write bound runs from the request's start and may
			// have passed while the body stalled: give the 408 time to go out.
			ExtendWrite(w, answerAfterStall)
			return nil, NewProblem(http.StatusRequestTimeout, "request-timeout", "the request body did not arrive in time")
		}
		return nil, NewProblem(http.StatusBadRequest, "bad-body", "reading request body: "+err.Error())
	}
	return data, nil
}

// maxPresize bounds the buffer allocated from a request's Content-Length
// before its bytes arrive (a client may announce more than it sends).
const maxPresize = 64 << 10

// readAll is io.ReadAll starting with room for size bytes (the announced
// length), so that a body of known length is read without regrowing.
func readAll(r io.Reader, size int64) ([]byte, error) {
	if size <= 0 {
		return io.ReadAll(r)
	}
	b := make([]byte, 0, size+1) // +1: the read that meets EOF
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // grow as io.ReadAll does
		}
	}
}

// DecodeJSON reads one JSON value from r's body into dst, strictly: the
// body as ReadBody reads it, then as DecodeJSONBytes decodes it. The
// returned error is a *Problem ready for WriteProblem.
func DecodeJSON(w http.ResponseWriter, r *http.Request, dst any, maxBytes int64) *Problem {
	data, p := ReadBody(w, r, maxBytes)
	if p != nil {
		return p
	}
	return DecodeJSONBytes(data, dst)
}

// DecodeOptional is DecodeJSON for bodies that may be left out: an empty
// body leaves dst as it is (all defaults).
func DecodeOptional(w http.ResponseWriter, r *http.Request, dst any, maxBytes int64) *Problem {
	data, p := ReadBody(w, r, maxBytes)
	if p != nil {
		return p
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	return DecodeJSONBytes(data, dst)
}

// DecodeJSONBytes is DecodeJSON's strict decoding of an already read body:
// valid UTF-8 (JSON text is UTF-8, RFC 8259; a raw 0xff inside a string
// would be stored and echoed as invalid JSON), no unknown fields, no
// trailing data, no syntax or type errors (400).
func DecodeJSONBytes(data []byte, dst any) *Problem {
	if len(bytes.TrimSpace(data)) == 0 {
		return NewProblem(http.StatusBadRequest, "bad-json", "request body is empty; want a JSON object")
	}
	if !utf8.Valid(data) {
		return NewProblem(http.StatusBadRequest, "bad-json",
			fmt.Sprintf("request body is not valid UTF-8 (first bad byte at offset %d)", firstInvalidUTF8(data)))
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

func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
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
