package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/internal/httpx"
)

// addHealth adds a member to the admin /health answer.
func (n *Node) addHealth(name string, f func(context.Context) any) {
	n.health[name] = f
}

// errNotServing is the readiness of a node that is starting or stopping.
var errNotServing = errors.New("node is starting or stopping")

// readiness says whether the node can do its work now, by role. A node
// with the control role needs an engine that accepts writes (its APIs
// write). A node without it (gateway, checker) routes and plans from its
// registry view, so it stays ready while the engine has no leader or is
// out of reach, as long as the view is younger than MaxViewAge: the time
// since the watch last proved itself current.
func (n *Node) readiness(ctx context.Context) error {
	if !n.ready.Load() {
		return errNotServing
	}
	if n.cfg.has(RoleControl) {
		return n.eng.Ready(ctx)
	}
	if age := n.regCache.ViewAge(); age > n.cfg.MaxViewAge {
		return fmt.Errorf("%w: the registry view is %s old (--max-view-age %s): the engine has not confirmed it since %s",
			engine.ErrUnavailable, age.Round(time.Millisecond), n.cfg.MaxViewAge, n.regCache.FreshAt().UTC().Format(time.RFC3339))
	}
	return nil
}

// handleReady is 200 while the node can do its work (readiness), else 503
// with the reason and the engine's state.
func (n *Node) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := n.readiness(ctx); err != nil {
		p := httpx.NewProblem(http.StatusServiceUnavailable, "not-ready", err.Error())
		if !errors.Is(err, errNotServing) {
			p = p.With("engine", n.eng.Status())
		}
		httpx.WriteProblem(w, p)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"status": "ready", "roles": n.cfg.Roles})
}

// handleHealth answers the node's state, for liveness checks and people:
// "healthy" (ready, engine writable); "degraded" (200: the node lives but
// cannot do all of its work — the engine does not accept writes, or it is
// not ready, with notReady saying why); "unhealthy" (503: starting or
// stopping, or without an engine connection — for a gateway-only node only
// once its view is too old as well, since it routes from its view). The
// engine section tells the connection's real state (connected,
// reconnecting…, to which server) apart from whether writes work and why
// not.
func (n *Node) handleHealth(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	st := n.eng.Status()
	status, code := "healthy", http.StatusOK
	rerr := n.readiness(ctx)
	connected := n.eng.Conn() != nil && n.eng.Conn().IsConnected()
	switch {
	case errors.Is(rerr, errNotServing), !connected && (n.cfg.has(RoleControl) || rerr != nil):
		status, code = "unhealthy", http.StatusServiceUnavailable
	case rerr != nil, !st.Writable:
		status = "degraded"
	}
	body := map[string]any{
		"status":    status,
		"timestamp": time.Now().UTC().Format(time.RFC3339Nano),
		"version":   n.cfg.Version,
		"roles":     n.cfg.Roles,
		"uptime":    time.Since(n.started).Round(time.Second).String(),
		"engine":    n.engineHealth(st),
	}
	if rerr != nil {
		body["notReady"] = rerr.Error()
	}
	for k, f := range n.health {
		body[k] = f(ctx)
	}
	httpx.WriteJSON(w, code, body)
}

// engineHealth is /health's engine section: the connection (engine.Info)
// and the write health (engine.Status).
func (n *Node) engineHealth(st engine.Status) map[string]any {
	in := n.eng.Info()
	eng := map[string]any{
		"mode": in.Mode, "embedded": in.Mode == "embedded", "connection": in.Connection,
		"connected": in.Connection == "connected", "replicas": in.Replicas, "maxPayloadBytes": in.MaxPayload,
		"writable": st.Writable, "since": st.Since,
	}
	for k, v := range map[string]string{"server": in.Server, "serverName": in.ServerName,
		"serverVersion": in.ServerVersion, "cluster": in.Cluster, "listen": in.Listen, "error": st.Reason} {
		if v != "" {
			eng[k] = v
		}
	}
	if st.StorageFull {
		eng["storageFull"] = true
	}
	if st.DiskReserve > 0 || st.DiskFree > 0 {
		eng["diskFreeBytes"], eng["diskReserveBytes"] = st.DiskFree, st.DiskReserve
	}
	return eng
}
