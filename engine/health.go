package engine

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Status says whether the engine can accept writes now. The engine
// refreshes it every Config.CheckInterval; /ready and /health show it.
type Status struct {
	// Connected reports the connection to the engine.
	Connected bool `json:"connected"`
	// Writable reports that the engine accepts writes.
	Writable bool `json:"writable"`
	// Reason says why it does not (empty when it does).
	Reason string `json:"reason,omitempty"`
	// StorageFull reports that the reason is a lack of space.
	StorageFull bool `json:"storageFull,omitempty"`
	// DiskFree and DiskReserve are the free bytes of the embedded store's
	// file system and the reserve kept there (embedded only).
	DiskFree    int64 `json:"diskFreeBytes,omitempty"`
	DiskReserve int64 `json:"diskReserveBytes,omitempty"`
	// Since is when the engine entered this state.
	Since time.Time `json:"since"`
}

// Err is nil when the engine is writable, else an error matching
// ErrStorageFull or ErrUnavailable that carries the reason.
func (s Status) Err() error {
	switch {
	case s.Writable:
		return nil
	case s.StorageFull:
		return fmt.Errorf("%w: %s", ErrStorageFull, s.Reason)
	default:
		return fmt.Errorf("%w: %s", ErrUnavailable, s.Reason)
	}
}

func (s Status) same(o Status) bool {
	return s.Connected == o.Connected && s.Writable == o.Writable && s.Reason == o.Reason
}

// restartBackoff bounds how often a JetStream that reported write errors
// is restarted.
const restartBackoff = 10 * time.Second

// monitor keeps the engine's Status fresh and restarts an embedded
// JetStream that stopped writing (a full disk) once there is room again.
type monitor struct {
	status      atomic.Pointer[Status]
	stop        chan struct{}
	done        chan struct{}
	lastRestart time.Time

	ensuredMu sync.Mutex
	ensured   map[string]bool // streams created through EnsureStream/EnsureKV
}

// Status is the engine's last checked state.
func (e *Engine) Status() Status {
	if s := e.status.Load(); s != nil {
		return *s
	}
	return Status{Connected: true, Writable: true}
}

// Writable is nil when the engine has room for writes that add data, and
// an error matching ErrStorageFull when it has not. Components ask it
// before publishes and appends, so a full disk is answered at once rather
// than by a write that fails half way.
func (e *Engine) Writable() error {
	if s := e.Status(); s.StorageFull {
		return s.Err()
	}
	return nil
}

func (e *Engine) startMonitor(ctx context.Context) {
	e.stop, e.done = make(chan struct{}), make(chan struct{})
	e.refresh(ctx)
	go e.watch()
}

func (e *Engine) stopMonitor() {
	if e.stop == nil {
		return
	}
	select {
	case <-e.stop:
	default:
		close(e.stop)
	}
	<-e.done
}

func (e *Engine) watch() {
	defer close(e.done)
	t := time.NewTicker(e.cfg.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), max(e.cfg.CheckInterval, 5*time.Second))
		e.refresh(ctx)
		cancel()
	}
}

// refresh checks the engine and stores (and logs a change of) its status.
func (e *Engine) refresh(ctx context.Context) {
	st := e.check(ctx)
	old := e.status.Load()
	if old != nil && old.same(st) {
		return
	}
	st.Since = time.Now().UTC()
	e.status.Store(&st)
	switch {
	case !st.Writable:
		e.cfg.Logger.Error("engine cannot accept writes", "reason", st.Reason, "storageFull", st.StorageFull,
			"diskFree", st.DiskFree, "diskReserve", st.DiskReserve)
	case old != nil:
		e.cfg.Logger.Info("engine accepts writes again", "after", st.Since.Sub(old.Since).Round(time.Millisecond))
	}
}

func (e *Engine) check(ctx context.Context) Status {
	st := Status{Connected: e.nc.IsConnected(), Writable: true}
	if !st.Connected {
		return st.not("not connected to the engine", false)
	}
	if e.srv != nil {
		room, reason := e.checkDisk(&st)
		if reason != "" {
			return st.not(reason, true)
		}
		if h := e.srv.Healthz(&server.HealthzOptions{}); h.StatusCode != 200 {
			if room {
				e.restartJetStream(h.Error)
			}
			return st.not(h.Error, !room)
		}
	}
	if _, err := e.js.AccountInfo(ctx); err != nil {
		return st.not("JetStream: "+Classify(err).Error(), errors.Is(Classify(err), ErrStorageFull))
	}
	for _, name := range e.ensuredStreams() {
		if _, err := e.js.Stream(ctx, name); err != nil {
			return st.not(fmt.Sprintf("stream %s: %v", name, Classify(err)), false)
		}
	}
	return st
}

func (s Status) not(reason string, full bool) Status {
	s.Writable, s.Reason, s.StorageFull = false, reason, full
	return s
}

// restartRoom is the least free space in which a JetStream that stopped
// on a write error is restarted (restarting on a full disk would fail to
// write its state again).
const restartRoom = 8 << 20

// checkDisk fills the disk figures of st. It returns a reason when the
// free space is below the reserve, and room when there is enough space to
// restart JetStream after a write error.
func (e *Engine) checkDisk(st *Status) (room bool, reason string) {
	dir := filepath.Join(e.cfg.DataDir, "jetstream")
	free, err := diskFree(dir)
	if err != nil {
		return false, ""
	}
	st.DiskFree = free
	if e.cfg.DiskReserve >= 0 {
		st.DiskReserve = e.cfg.DiskReserve
		if free < e.cfg.DiskReserve {
			return false, fmt.Sprintf("storage full: %d bytes free on the file system of %s, below the reserve of %d",
				free, dir, e.cfg.DiskReserve)
		}
	}
	return free >= max(e.cfg.DiskReserve, restartRoom), ""
}

// restartJetStream restarts the embedded JetStream after a write error
// (the file store stops a stream at its first failed write and keeps
// failing until it is reloaded). It runs only when the disk has room again
// (checkDisk said so) and at most once per restartBackoff. Everything
// acknowledged is on disk; the reload reads it back.
func (e *Engine) restartJetStream(cause string) {
	if time.Since(e.lastRestart) < restartBackoff || e.jsCfg.StoreDir == "" {
		return
	}
	e.lastRestart = time.Now()
	e.cfg.Logger.Warn("restarting the embedded JetStream after write errors", "cause", cause)
	if err := e.srv.ShutdownJetStream(); err != nil {
		e.cfg.Logger.Error("stopping JetStream", "err", err)
		return
	}
	cfg := e.jsCfg
	if err := e.srv.EnableJetStream(&cfg); err != nil {
		e.cfg.Logger.Error("starting JetStream again", "err", err)
	}
}

func (e *Engine) ensuredStream(name string) {
	e.ensuredMu.Lock()
	defer e.ensuredMu.Unlock()
	if e.ensured == nil {
		e.ensured = map[string]bool{}
	}
	e.ensured[name] = true
}

func (e *Engine) ensuredStreams() []string {
	e.ensuredMu.Lock()
	defer e.ensuredMu.Unlock()
	out := make([]string, 0, len(e.ensured))
	for n := range e.ensured {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
