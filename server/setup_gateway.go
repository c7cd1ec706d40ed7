package server

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/plexushq/plexus/gateway"
)

// reloadDebounce lets an editor finish writing (or replacing) the file
// before it is read.
const reloadDebounce = 250 * time.Millisecond

// setupGateway builds the gateway role: the handler of the gateway
// listener (fed by the node's registry cache), GET /v1/breakers on the
// admin listener, and the watch on the configuration file that reloads the
// node when it changes (SIGHUP does the same through Node.Reload).
func (n *Node) setupGateway(ctx context.Context) error {
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
	n.add("gateway", &gatewayComponent{g: g, file: n.cfg.ConfigFile, reload: n.Reload, log: log})
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

// gatewayComponent gives the gateway its lifecycle in the node and watches
// the configuration file.
type gatewayComponent struct {
	g      *gateway.Gateway
	file   string
	reload func() error
	log    *slog.Logger

	w    *fsnotify.Watcher
	stop chan struct{}
	wg   sync.WaitGroup
}

func (c *gatewayComponent) Start(ctx context.Context) error {
	if err := c.g.Start(ctx); err != nil {
		return err
	}
	if c.file == "" {
		return nil
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", c.file, err)
	}
	// The directory, not the file: editors and config management replace
	// files by renaming, which ends a watch on the file itself.
	if err := w.Add(filepath.Dir(c.file)); err != nil {
		_ = w.Close()
		return fmt.Errorf("watch %s: %w", c.file, err)
	}
	c.w, c.stop = w, make(chan struct{})
	c.wg.Add(1)
	go c.watch()
	return nil
}

// watch reloads the node, debounced, when the configuration file changes.
func (c *gatewayComponent) watch() {
	defer c.wg.Done()
	name := filepath.Clean(c.file)
	t := time.NewTimer(time.Hour)
	t.Stop()
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case ev, ok := <-c.w.Events:
			if !ok {
				return
			}
			if filepath.Clean(ev.Name) == name && ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename|fsnotify.Remove) != 0 {
				t.Reset(reloadDebounce)
			}
		case err, ok := <-c.w.Errors:
			if !ok {
				return
			}
			c.log.Warn("configuration file watch error", "file", c.file, "err", err)
		case <-t.C:
			_ = c.reload() // logs its outcome; an invalid file keeps the running configuration
		}
	}
}

func (c *gatewayComponent) Stop(ctx context.Context) error {
	if c.w != nil {
		close(c.stop)
		c.wg.Wait()
		_ = c.w.Close()
	}
	return c.g.Stop(ctx)
}

// Reload applies the gateway section of a changed file; an invalid one is
// an error and the running configuration stays.
func (c *gatewayComponent) Reload(fc *FileConfig) error {
	return c.g.Reload(func(cfg *gateway.Config) error { return DecodeSection(&fc.Gateway, cfg) })
}
