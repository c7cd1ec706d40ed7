package gateway

import (
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
	// RetryAfter is the time left until an open breaker lets a probe through.
	RetryAfter *httpx.Duration `json:"retryAfter,omitempty"`
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
	if in.RetryAfter > 0 {
		d := httpx.Duration(in.RetryAfter)
		st.RetryAfter = &d
	}
	return st
}

// BreakersHandler serves GET /v1/breakers on the admin listener:
// [{service, instance?, state, failures, openedAt?, retryAfter?}].
func (g *Gateway) BreakersHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, g.Breakers())
	})
}
