package main

import (
	"context"

	"github.com/plexushq/plexus/bench/internal/benchutil"
	"github.com/plexushq/plexus/engine"
)

// plexusSystems holds the Plexus brokers (SDK and HTTP API) once the queue
// package exists.
type plexusSystems struct{}

func startPlexus(ctx context.Context, ps *benchutil.Procs, eng *engine.Engine, o options) (*plexusSystems, error) {
	return &plexusSystems{}, nil
}

func (p *plexusSystems) brokers() []broker { return nil }

func (p *plexusSystems) Close() {}
