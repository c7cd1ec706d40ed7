package server

import (
	"crypto/subtle"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/plexushq/plexus/internal/httpguard"
	"github.com/plexushq/plexus/internal/httpx"
	"github.com/plexushq/plexus/web"
)

// publicAdminPaths answer without the token.
// /openapi.yaml is documentation of the API, the same for every node, and
// tells nothing about this node's state.
var publicAdminPaths = map[string]bool{"/health": true, "/ready": true, "/metrics": true, "/openapi.yaml": true}

func (n *Node) setupAdmin() {
	n.admin.HandleFunc("GET /health", n.handleHealth)
	n.admin.HandleFunc("GET /ready", n.handleReady)
	n.admin.Handle("GET /metrics", promhttp.HandlerFor(n.metrics, promhttp.HandlerOpts{
		Registry: n.metrics, ErrorHandling: promhttp.ContinueOnError,
	}))
	n.admin.HandleFunc("GET /openapi.yaml", serveOpenAPI)
	n.admin.Handle("GET /ui/", web.Handler("/ui/"))
	n.admin.Handle("GET /ui", http.RedirectHandler("/ui/", http.StatusMovedPermanently))
}

// adminHandler puts the token check, the request-body idle timeout and
// panic recovery in front of the admin mux. A request without the token is
// answered at once, without reading its body.
func (n *Node) adminHandler() http.Handler {
	token := []byte(n.token)
	idle := n.cfg.limits().BodyIdleTimeout
	return recoverer(n.log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !publicAdminPaths[r.URL.Path] && !isPublicUI(r.URL.Path) &&
			subtle.ConstantTimeCompare([]byte(bearerToken(r.Header.Get("Authorization"))), token) != 1 {
			httpguard.AbandonBody(w, r)
			w.Header().Set("WWW-Authenticate", `Bearer realm="plexus-admin"`)
			httpx.WriteProblem(w, httpx.NewProblem(http.StatusUnauthorized, "unauthorized",
				"missing or wrong admin token: send Authorization: Bearer <token>"))
			return
		}
		if httpguard.MustClose(r, false) {
			httpguard.SetClose(w.Header()) // chunked: its Content-Length may have been dropped
		}
		if httpguard.HasBody(r) {
			b := httpguard.NewBody(w, r.Body, idle)
			defer b.Detach()
			r = r.WithContext(r.Context()) // a copy: net/http keeps judging the request it read
			r.Body = b
		}
		n.admin.ServeHTTP(w, r)
	}))
}

// bearerToken returns the credentials of an Authorization value with the
// Bearer scheme, whose name is case-insensitive (RFC 9110 §11.1); "" for
// any other scheme.
func bearerToken(v string) string {
	scheme, cred, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(cred)
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
