package gateway

import (
	"net/http"
	"time"

	"github.com/plexushq/plexus/internal/httpx"
)

// serviceCounts is one service in the gateway's /health answer.
type serviceCounts struct {
	Instances int `json:"instances"`
	Healthy   int `json:"healthy"`
}

// healthBody is the gateway's /health shape (the seed gateway's;
// GET /health in docs/openapi.yaml).
type healthBody struct {
	Status    string                   `json:"status"`
	Timestamp string                   `json:"timestamp"`
	Services  map[string]serviceCounts `json:"services"`
}

// health answers GET /health in the seed gateway's shape:
// {"status":"healthy","timestamp":…,"services":{"<name>":{"instances":N,"healthy":M}}}.
func (g *Gateway) health(ex *exchange) {
	svcs := g.disc.Services()
	body := healthBody{Status: "healthy", Timestamp: time.Now().UTC().Format(time.RFC3339Nano),
		Services: make(map[string]serviceCounts, len(svcs))}
	for _, s := range svcs {
		body.Services[s.Name] = serviceCounts{Instances: len(s.Instances), Healthy: len(s.Healthy)}
	}
	ex.status = http.StatusOK
	ex.w.Header().Set("Cache-Control", "no-store")
	ex.beforeHead()
	httpx.WriteJSON(ex.w, http.StatusOK, body)
}
