package server

import (
	"context"
	"fmt"

	"github.com/plexushq/plexus/gateway"
)

// setupGateway builds the gateway role: the handler of the gateway
// listener (fed by the node's registry cache), GET /v1/breakers on the
// admin listener, and the gateway: section's part of a reload.
func (n *Node) setupGateway(context.Context) error {
	if !n.cfg.has(RoleGateway) {
		return nil
	}
	cfg, err := gatewaySection(n.file)
	if err != nil {
		return err
	}
	log := n.log.With("component", "gateway")
	lim := n.cfg.limits()
	g, err := gateway.New(cfg, gateway.Options{Discovery: n.regCache, Logger: log, Metrics: n.metrics, TracerProvider: n.tracer,
		BodyIdleTimeout: lim.BodyIdleTimeout, SendIdleTimeout: lim.SendIdleTimeout})
	if err != nil {
		return fmt.Errorf("config gateway: %w", err)
	}
	n.gateway = g
	gateway.NewAPI(g).Mount(n.handleAdmin)
	n.add("gateway", g)
	n.onReload("gateway", func(fc *FileConfig) (change, error) {
		cfg, err := gatewaySection(fc)
		if err != nil {
			return change{}, err
		}
		p, err := g.Prepare(cfg)
		if err != nil {
			return change{}, err
		}
		return change{apply: func(context.Context) error { p.Commit(); return nil }, discard: p.Discard}, nil
	})
	return nil
}

func gatewaySection(fc *FileConfig) (gateway.Config, error) {
	var cfg gateway.Config
	if err := DecodeSection(&fc.Gateway, &cfg); err != nil {
		return cfg, fmt.Errorf("config gateway: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("config gateway: %w", err)
	}
	return cfg, nil
}
