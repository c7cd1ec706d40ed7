package httpx

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
)

// NewJSONRequest builds a request to a Plexus API: in (when not nil) as
// the JSON body with its content type, and the bearer token (when set).
// Every Go client of the admin API builds its requests with it.
func NewJSONRequest(ctx context.Context, method, url, token string, in any) (*http.Request, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req, nil
}

// Mux serves the routes an API mounts (its Mount method) on a mux of
// their own: every API's Handler, for tests and embedding.
func Mux(mount func(handle func(pattern string, h http.Handler))) http.Handler {
	mux := http.NewServeMux()
	mount(mux.Handle)
	return mux
}
