package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// RegistrarConfig configures a Registrar. The zero value works.
type RegistrarConfig struct {
	// Interval between heartbeats. Default a third of the registration's
	// TTL, so two heartbeats may be lost before the lease ends.
	Interval time.Duration
	// Logger for heartbeat trouble. Default slog.Default().
	Logger *slog.Logger
}

// Registrar keeps one instance registered for the life of a program:
// Start registers it and heartbeats in the background (registering again
// when the registry answers 404, e.g. after the lease ran out during a
// network partition); Drain marks it draining; Stop ends the heartbeats
// and deregisters it.
type Registrar struct {
	c       *Client
	service string
	id      string
	reg     Registration
	cfg     RegistrarConfig

	mu       sync.Mutex
	status   Status // desired: healthy or draining
	last     *Instance
	cancel   context.CancelFunc
	done     chan struct{}
	stopOnce sync.Once
}

// NewRegistrar prepares a registrar for instance id of service.
func (c *Client) NewRegistrar(service, id string, reg Registration, cfg RegistrarConfig) (*Registrar, error) {
	inst, err := reg.Normalize(service, id)
	if err != nil {
		return nil, err
	}
	if cfg.Interval <= 0 {
		cfg.Interval = inst.TTL / 3
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Registrar{c: c, service: service, id: id, reg: reg, cfg: cfg, status: StatusHealthy}, nil
}

// Start registers the instance and starts the heartbeats.
func (r *Registrar) Start(ctx context.Context) error {
	if err := r.register(ctx); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancel != nil {
		return errors.New("registry: registrar already started")
	}
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.cancel, r.done = cancel, make(chan struct{})
	go r.loop(hctx)
	return nil
}

func (r *Registrar) register(ctx context.Context) error {
	inst, _, err := r.c.Register(ctx, r.service, r.id, r.reg)
	if err != nil {
		return err
	}
	r.mu.Lock()
	want := r.status
	r.last = inst
	r.mu.Unlock()
	if want == StatusDraining {
		// The lease was lost while draining: stay out of rotation.
		return r.SetStatus(ctx, StatusDraining)
	}
	return nil
}

// Instance is the instance as last registered (nil before Start).
func (r *Registrar) Instance() *Instance {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

func (r *Registrar) loop(ctx context.Context) {
	defer close(r.done)
	t := time.NewTimer(r.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next := r.cfg.Interval
		if err := r.beat(ctx); err != nil && ctx.Err() == nil {
			r.cfg.Logger.Warn("registry: heartbeat failed", "service", r.service, "instance", r.id, "err", err)
			next = max(r.cfg.Interval/4, 50*time.Millisecond) // retry sooner
		}
		t.Reset(next)
	}
}

// beat sends one heartbeat, registering again when the lease is gone.
func (r *Registrar) beat(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, max(r.cfg.Interval, time.Second))
	defer cancel()
	_, err := r.c.Heartbeat(cctx, r.service, r.id)
	if errors.Is(err, ErrNotFound) {
		r.cfg.Logger.Info("registry: lease lost; registering again", "service", r.service, "instance", r.id)
		return r.register(cctx)
	}
	return err
}

// SetStatus sets the instance draining or healthy; the registrar keeps
// that status across re-registrations.
func (r *Registrar) SetStatus(ctx context.Context, status Status) error {
	if err := ValidateStatus(status); err != nil {
		return err
	}
	r.mu.Lock()
	r.status = status
	r.mu.Unlock()
	inst, err := r.c.SetStatus(ctx, r.service, r.id, status)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.last = inst
	r.mu.Unlock()
	return nil
}

// Drain marks the instance draining: gateways and clients stop sending it
// new requests. Wait for in-flight work, then Stop.
func (r *Registrar) Drain(ctx context.Context) error { return r.SetStatus(ctx, StatusDraining) }

// Stop ends the heartbeats and deregisters the instance, bounded by ctx.
// It is safe to call more than once.
func (r *Registrar) Stop(ctx context.Context) error {
	var err error
	r.stopOnce.Do(func() {
		r.mu.Lock()
		cancel, done := r.cancel, r.done
		r.mu.Unlock()
		if cancel != nil {
			cancel()
			select {
			case <-done:
			case <-ctx.Done():
				err = fmt.Errorf("registry: registrar stop: %w", ctx.Err())
				return
			}
		}
		if derr := r.c.Deregister(ctx, r.service, r.id); derr != nil && !errors.Is(derr, ErrNotFound) {
			err = derr
		}
	})
	return err
}
