package gateway

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/plexushq/plexus/breaker"
	"github.com/plexushq/plexus/internal/httpx"
)

// BreakerStatus is one circuit breaker as GET /v1/breakers lists it.
type BreakerStatus struct {
	Service  string `json:"service"`
	Instance string `json:"instance,omitempty"`
	State    string `json:"state"`
	Failures int    `json:"failures"`
	// OpenedAt is set while the breaker is open or half-open.
	OpenedAt *time.Time `json:"openedAt,omitempty"`
	// RetryAfter is the time left until an open breaker lets a probe
	// through; zero when none is pending (JSON: a duration string, or
	// absent).
	RetryAfter time.Duration `json:"retryAfter,omitempty"`
}

// MarshalJSON writes RetryAfter as a Go duration string ("42.5s").
func (b BreakerStatus) MarshalJSON() ([]byte, error) {
	type fields BreakerStatus
	j := struct {
		fields
		RetryAfter *httpx.Duration `json:"retryAfter,omitempty"`
	}{fields: fields(b)}
	if b.RetryAfter > 0 {
		d := httpx.Duration(b.RetryAfter)
		j.RetryAfter = &d
	}
	return json.Marshal(j)
}

// Breakers lists the breakers of every service the gateway has served,
// the service's first, then its instances', sorted.
func (g *Gateway) Breakers() []BreakerStatus {
	var svcs []*service
	g.services.Range(func(_, v any) bool {
		svcs = append(svcs, v.(*service))
		return true
	})
	sort.Slice(svcs, func(i, j int) bool { return svcs[i].name < svcs[j].name })
	out := []BreakerStatus{}
	for _, s := range svcs {
		s.mu.Lock()
		br, inst := s.breaker, s.inst
		s.mu.Unlock()
		if br == nil {
			continue
		}
		out = append(out, breakerStatus(s.name, "", br.Info()))
		infos := inst.List()
		sort.Slice(infos, func(i, j int) bool { return infos[i].Name < infos[j].Name })
		for _, in := range infos {
			_, id, _ := strings.Cut(in.Name, "/")
			out = append(out, breakerStatus(s.name, id, in))
		}
	}
	return out
}

func breakerStatus(service, instance string, in breaker.Info) BreakerStatus {
	st := BreakerStatus{Service: service, Instance: instance, State: in.State.String(), Failures: in.Failures}
	if !in.OpenedAt.IsZero() {
		t := in.OpenedAt.UTC()
		st.OpenedAt = &t
	}
	st.RetryAfter = max(in.RetryAfter, 0)
	return st
}

// API serves the gateway's state on the admin listener (docs/openapi.yaml):
// GET /v1/breakers, [{service, instance?, state, failures, openedAt?,
// retryAfter?}].
type API struct{ g *Gateway }

// NewAPI returns the admin API of g.
func NewAPI(g *Gateway) *API { return &API{g: g} }

// Mount registers the routes with handle (e.g. a ServeMux's Handle).
func (a *API) Mount(handle func(pattern string, h http.Handler)) {
	handle("GET /v1/breakers", http.HandlerFunc(a.breakers))
}

// Handler is the API on its own mux (tests, embedding).
func (a *API) Handler() http.Handler { return httpx.Mux(a.Mount) }

func (a *API) breakers(w http.ResponseWriter, _ *http.Request) {
	httpx.WriteJSON(w, http.StatusOK, a.g.Breakers())
}
