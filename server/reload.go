package server

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"
)

// The node owns reload, as Caddy provisions and validates a whole new
// configuration before it swaps: a changed file is read, every section is
// checked and readied by the component that owns it (prepare), and only
// when all are ready are they applied; a file that is invalid anywhere
// changes nothing. Each applied file is a new generation, which a metric
// (plexus_config_generation), a log line and /health report. The node
// watches the file itself, whatever its roles; SIGHUP (plexus up) and
// Node.Reload do the same.

// reloadDebounce lets an editor finish writing (or replacing) the file
// before it is read.
const reloadDebounce = 250 * time.Millisecond

// reloadApplyTimeout bounds applying a generation (queue changes are
// engine calls).
const reloadApplyTimeout = 30 * time.Second

// change is one section of a new file, checked and readied. apply makes it
// the one in force; discard drops it when another section was rejected.
// Changes whose apply can fail (engine calls) are applied first, so a
// failure leaves the in-memory sections of the running generation alone.
type change struct {
	apply    func(ctx context.Context) error
	discard  func()
	fallible bool
}

// preparer checks and readies one section of fc; nothing changes yet.
type preparer func(fc *FileConfig) (change, error)

// onReload registers a section's preparer; components call it from their
// setup.
func (n *Node) onReload(name string, p preparer) {
	n.preparers = append(n.preparers, namedPreparer{name, p})
}

type namedPreparer struct {
	name string
	p    preparer
}

// configState is what /health says about the file in force.
type configState struct {
	mu       sync.Mutex
	gen      int64
	loadedAt time.Time
	lastErr  string

	generation prometheus.GaugeFunc
	reloads    *prometheus.CounterVec
}

func (n *Node) setupConfigState() {
	c := &n.conf
	c.gen, c.loadedAt = 1, time.Now()
	c.generation = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "plexus_config_generation",
		Help: "The generation of the configuration file in force: 1 at start, one more per applied reload."},
		func() float64 { return float64(c.current()) })
	c.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plexus_config_reloads_total",
		Help: "Reloads of the configuration file, by result (applied, rejected)."}, []string{"result"})
	c.reloads.WithLabelValues("applied")
	c.reloads.WithLabelValues("rejected")
	n.metrics.MustRegister(c.generation, c.reloads)
	n.addHealth("config", func(context.Context) any { return c.health(n.cfg.ConfigFile) })
}

func (c *configState) current() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

func (c *configState) health(file string) map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := map[string]any{"generation": c.gen, "loadedAt": c.loadedAt.UTC().Format(time.RFC3339Nano)}
	if file != "" {
		h["file"] = file
	}
	if c.lastErr != "" {
		h["lastError"] = c.lastErr
	}
	return h
}

// Reload re-reads the configuration file, prepares every section and
// applies them all, or none when any section is invalid.
func (n *Node) Reload() error {
	n.reloadMu.Lock()
	defer n.reloadMu.Unlock()
	err := n.reload()
	c := &n.conf
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.lastErr = err.Error()
		c.reloads.WithLabelValues("rejected").Inc()
		n.log.Error("configuration rejected", "file", n.cfg.ConfigFile, "in_force", c.gen, "err", err)
		return err
	}
	c.gen++
	c.loadedAt, c.lastErr = time.Now(), ""
	c.reloads.WithLabelValues("applied").Inc()
	n.log.Info("configuration applied", "file", n.cfg.ConfigFile, "generation", c.gen)
	return nil
}

func (n *Node) reload() error {
	fc, err := LoadFile(n.cfg.ConfigFile)
	if err != nil {
		return err
	}
	if err := fc.check(); err != nil { // every section, whatever the roles
		return err
	}
	changes := make([]change, 0, len(n.preparers))
	discard := func() {
		for _, ch := range changes {
			if ch.discard != nil {
				ch.discard()
			}
		}
	}
	for _, np := range n.preparers {
		ch, err := np.p(fc)
		if err != nil {
			discard()
			return fmt.Errorf("%s: %w", np.name, err)
		}
		changes = append(changes, ch)
	}
	slices.SortStableFunc(changes, func(a, b change) int {
		switch {
		case a.fallible == b.fallible:
			return 0
		case a.fallible:
			return -1
		}
		return 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), reloadApplyTimeout)
	defer cancel()
	for i, ch := range changes {
		if err := ch.apply(ctx); err != nil {
			changes = changes[i+1:] // applied ones stay; the rest are dropped
			discard()
			return err
		}
	}
	n.file = fc
	return nil
}

// fileWatch reloads the node, debounced, when its configuration file
// changes. It watches the directory, not the file: editors and
// configuration management replace files by renaming, which ends a watch
// on the file itself.
type fileWatch struct {
	n    *Node
	file string

	w    *fsnotify.Watcher
	stop chan struct{}
	done chan struct{}
}

func (fw *fileWatch) Start(context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", fw.file, err)
	}
	if err := w.Add(filepath.Dir(fw.file)); err != nil {
		_ = w.Close()
		return fmt.Errorf("watch %s: %w", fw.file, err)
	}
	fw.w, fw.stop, fw.done = w, make(chan struct{}), make(chan struct{})
	go fw.run()
	return nil
}

func (fw *fileWatch) run() {
	defer close(fw.done)
	name := filepath.Clean(fw.file)
	t := time.NewTimer(time.Hour)
	t.Stop()
	defer t.Stop()
	for {
		select {
		case <-fw.stop:
			return
		case ev, ok := <-fw.w.Events:
			if !ok {
				return
			}
			if filepath.Clean(ev.Name) == name && ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename|fsnotify.Remove) != 0 {
				t.Reset(reloadDebounce)
			}
		case err, ok := <-fw.w.Errors:
			if !ok {
				return
			}
			fw.n.log.Warn("configuration file watch error", "file", fw.file, "err", err)
		case <-t.C:
			_ = fw.n.Reload() // logs its outcome; an invalid file keeps the generation in force
		}
	}
}

func (fw *fileWatch) Stop(ctx context.Context) error {
	if fw.w == nil {
		return nil
	}
	close(fw.stop)
	var err error
	select {
	case <-fw.done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	return errors.Join(err, fw.w.Close())
}
