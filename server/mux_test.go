package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestAdminUnknownPathIsProblem: a path no admin route serves answers a
// problem+json 404 (ServeMux's default is plain text), a known path with
// another method a problem+json 405 with Allow, and without the token both
// stay 401 so the token still hides which paths exist.
func TestAdminUnknownPathIsProblem(t *testing.T) {
	n := startNode(t, Config{AdminToken: "0123456789abcdef-mux", Roles: []string{RoleControl}})
	base := "http://" + n.AdminAddr()
	for _, tc := range []struct {
		method, path, token string
		status              int
		typ, allow          string
	}{
		{"GET", "/v1/nosuch", n.Token(), 404, "urn:plexus:problem:no-route", ""},
		{"GET", "/", n.Token(), 404, "urn:plexus:problem:no-route", ""},
		{"PATCH", "/v1/queues", n.Token(), 405, "urn:plexus:problem:method-not-allowed", "GET, HEAD"},
		{"GET", "/v1/nosuch", "", 401, "urn:plexus:problem:unauthorized", ""},
	} {
		req, _ := http.NewRequest(tc.method, base+tc.path, nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var p struct {
			Type   string `json:"type"`
			Status int    `json:"status"`
			Detail string `json:"detail"`
		}
		err = json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != "application/problem+json" ||
			err != nil || p.Type != tc.typ || p.Status != tc.status {
			t.Errorf("%s %s: %d %q %+v (%v)", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), p, err)
		}
		if tc.allow != "" && resp.Header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, resp.Header.Get("Allow"), tc.allow)
		}
	}
}

// TestOpenAPIServedWithoutToken: the contract is documentation and is
// served to anyone who can reach the admin listener.
func TestOpenAPIServedWithoutToken(t *testing.T) {
	n := startNode(t, Config{Roles: []string{RoleControl}})
	resp, body := get(t, "http://"+n.AdminAddr()+"/openapi.yaml", "")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/yaml" ||
		!strings.HasPrefix(string(body), "openapi: 3.1") {
		t.Fatalf("%d %q %.40q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	routes := n.AdminRoutes()
	for _, want := range []string{"GET /openapi.yaml", "GET /v1/queues", "PUT /v1/services/{service}/instances/{id}"} {
		found := false
		for _, r := range routes {
			found = found || r == want
		}
		if !found {
			t.Errorf("AdminRoutes has no %q: %v", want, routes)
		}
	}
}
