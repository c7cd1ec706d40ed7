package server

import (
	"context"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/plexushq/plexus/internal/httpx"
	"github.com/plexushq/plexus/web"
)

// publicAdminPaths answer without the token.
var publicAdminPaths = map[string]bool{"/health": true, "/ready": true, "/metrics": true}

func (n *Node) setupAdmin() {
	n.admin.HandleFunc("GET /health", n.handleHealth)
	n.admin.HandleFunc("GET /ready", n.handleReady)
	n.admin.Handle("GET /metrics", promhttp.HandlerFor(n.metrics, promhttp.HandlerOpts{
		Registry: n.metrics, ErrorHandling: promhttp.ContinueOnError,
	}))
	n.admin.Handle("GET /ui/", web.Handler("/ui/"))
	n.admin.Handle("GET /ui", http.RedirectHandler("/ui/", http.StatusMovedPermanently))
}

// adminHandler puts the token check and panic recovery in front of the
// admin mux.
func (n *Node) adminHandler() http.Handler {
	token := []byte("Bearer " + n.token)
	return recoverer(n.log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !publicAdminPaths[r.URL.Path] && !isPublicUI(r.URL.Path) {
			got := []byte(r.Header.Get("Authorization"))
			if subtle.ConstantTimeCompare(got, token) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="plexus-admin"`)
				httpx.WriteProblem(w, httpx.NewProblem(http.StatusUnauthorized, "unauthorized",
					"missing or wrong admin token: send Authorization: Bearer <token>"))
				return
			}
		}
		n.admin.ServeHTTP(w, r)
	}))
}

// isPublicUI lets the dashboard's static files load without the token; the
// dashboard asks for the token and sends it with every API call.
func isPublicUI(path string) bool {
	return path == "/ui" || strings.HasPrefix(path, "/ui/")
}

// handleAdmin registers an admin route; components call it from their setup.
func (n *Node) handleAdmin(pattern string, h http.Handler) {
	n.admin.Handle(pattern, h)
}

// addHealth adds a member to the admin /health answer.
func (n *Node) addHealth(name string, f func(context.Context) any) {
	n.health[name] = f
}

func (n *Node) handleHealth(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	status, code := "healthy", http.StatusOK
	eng := map[string]any{"embedded": n.eng.Embedded(), "connected": true}
	if err := n.eng.Ready(ctx); err != nil {
		status, code = "unhealthy", http.StatusServiceUnavailable
		eng["connected"] = false
		eng["error"] = err.Error()
	}
	body := map[string]any{
		"status":    status,
		"timestamp": time.Now().UTC().Format(time.RFC3339Nano),
		"version":   n.cfg.Version,
		"roles":     n.cfg.Roles,
		"uptime":    time.Since(n.started).Round(time.Second).String(),
		"engine":    eng,
	}
	for k, f := range n.health {
		body[k] = f(ctx)
	}
	httpx.WriteJSON(w, code, body)
}

func (n *Node) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if !n.ready.Load() {
		httpx.WriteProblem(w, httpx.NewProblem(http.StatusServiceUnavailable, "not-ready", "node is starting or stopping"))
		return
	}
	if err := n.eng.Ready(ctx); err != nil {
		httpx.WriteProblem(w, httpx.NewProblem(http.StatusServiceUnavailable, "not-ready", err.Error()))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"status": "ready"})
}

func recoverer(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.Error("panic in admin handler", "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				httpx.Error(w, http.StatusInternalServerError, "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}
