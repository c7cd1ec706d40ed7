package server

import (
	"context"
	"fmt"
	"time"

	"github.com/plexushq/plexus/registry"
)

// setupRegistry wires the registry: every node keeps a KV-fed cache
// (n.regCache, started before the other components so the gateway and the
// service client find the registry loaded); the control role serves the
// registry API on the admin listener; the checker role runs the active
// health checks.
func (n *Node) setupRegistry(ctx context.Context) error {
	log := n.log.With("component", "registry")
	store, err := registry.OpenStore(ctx, n.eng, registry.StoreConfig{Logger: log})
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	// Reconnect at least every second: after a failover the view must come
	// back as soon as the engine can create the new watch (the node's one
	// watch is cheap to retry).
	n.regCache = registry.NewCache(store, registry.CacheConfig{Metrics: n.metrics, Logger: log, MaxBackoff: time.Second})
	n.add("registry-cache", n.regCache)
	n.addHealth("registry", func(context.Context) any {
		fresh := n.regCache.FreshAt()
		out := map[string]any{"viewAgeSeconds": n.regCache.ViewAge().Seconds(), "maxViewAgeSeconds": n.cfg.MaxViewAge.Seconds()}
		if !fresh.IsZero() {
			out["viewFreshAt"] = fresh.UTC()
		}
		return out
	})
	n.addHealth("services", func(context.Context) any {
		out := map[string]any{}
		for _, s := range n.regCache.Services() {
			out[s.Name] = map[string]int{"instances": len(s.Instances), "healthy": len(s.Healthy)}
		}
		return out
	})
	if n.cfg.has(RoleControl) {
		registry.NewAPI(store, registry.APIConfig{Logger: log, RequestTimeout: n.cfg.RequestTimeout,
			Streams: n.slots}).Mount(n.handleAdmin)
	}
	if n.cfg.has(RoleChecker) {
		ccfg := registry.CheckerConfig{Metrics: n.metrics, Logger: log, Writable: func() (time.Time, bool) {
			st := n.eng.Status()
			return st.Since, st.Writable
		}}
		if n.traceChecks {
			ccfg.TracerProvider = n.tracer
		}
		n.add("registry-checker", registry.NewChecker(store, n.regCache, ccfg))
	}
	return nil
}
