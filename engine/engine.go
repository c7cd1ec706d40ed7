// Package engine owns Plexus's one store: NATS JetStream, either embedded in the
// process (the default) or an external server or cluster. It starts or connects,
// creates the streams and key-value buckets the other components ask for,
// idempotently, and shuts down cleanly.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Sync modes for the embedded file store. Besides these two, Config.Sync
// takes a Go duration ("100ms", "1s"): the fsync interval.
const (
	// SyncInterval lets the operating system write data to disk and forces an
	// fsync every two minutes (nats-server's default). A process crash (kill -9)
	// loses nothing that was acknowledged; a power loss can lose the writes of
	// the last interval.
	SyncInterval = "interval"
	// SyncAlways fsyncs every write before it is acknowledged. Nothing
	// acknowledged is lost even on power loss, at roughly a tenth of the
	// publish rate.
	SyncAlways = "always"
	// DefaultSyncInterval is the fsync interval of SyncInterval.
	DefaultSyncInterval = 2 * time.Minute
	// DefaultDiskReserve is the free space the embedded engine keeps.
	DefaultDiskReserve = 64 << 20
)

// Config says how to reach the engine. The zero value runs an embedded
// server with its store in ./plexus-data.
type Config struct {
	// DataDir holds the embedded server's file store (DataDir/jetstream).
	// Default "./plexus-data".
	DataDir string
	// URLs of an external NATS server or cluster. Empty means embedded.
	URLs []string
	// Listen exposes the embedded server on host:port for other nodes and
	// tools. Empty means no network listener at all (in-process only). The
	// listener always requires authentication: User/Password, Token or
	// NkeyFile when given, else user ListenUser with a password generated
	// at first start and kept in DataDir/PasswordFile (mode 0600). With
	// TLSCert and TLSKey it speaks TLS only; TLSCA then also requires client
	// certificates signed by it.
	Listen string
	// Sync is SyncInterval (default), SyncAlways, or a Go duration between
	// 1ms and 2m ("100ms", "1s"): how often the embedded store fsyncs, which
	// bounds what a power loss can take. Embedded only.
	Sync string
	// DiskReserve is the free space the embedded engine keeps on its data
	// dir's file system: below it, writes that add data are refused with
	// ErrStorageFull and Status reports the engine not writable, before the
	// disk is really full (a write that hits a full disk stops the stream
	// until JetStream is restarted). Default DefaultDiskReserve; negative
	// turns the guard off.
	DiskReserve int64
	// CheckInterval is how often the engine checks that it can accept
	// writes (disk space, JetStream and stream health). Default 1s.
	CheckInterval time.Duration
	// Lock is the data dir's lock, taken earlier with LockDataDir (a node
	// takes it before it binds its ports). Nil: an embedded Start takes it.
	// Stop releases it either way.
	Lock *DirLock
	// Replicas for the streams and buckets created on an external cluster.
	// Default 1; use 3 on a 3- or 5-node cluster. Embedded always uses 1.
	Replicas int
	// CredsFile is a NATS credentials file (user JWT and nkey seed) for an
	// external server in operator mode.
	CredsFile string
	// NkeyFile holds a user nkey seed (SU...): the external connection
	// signs with it; with Listen, the listener accepts that user.
	NkeyFile string
	// User and Password authenticate the external connection, or are what
	// the listener requires.
	User, Password string
	// Token authenticates the external connection, or is what the
	// listener requires.
	Token string
	// TLSCA, TLSCert and TLSKey are PEM files. External: the CA that signs
	// the servers' certificates and this node's client certificate (when
	// the servers verify clients). Listen: the server's certificate, and a
	// CA whose client certificates the listener requires.
	TLSCA, TLSCert, TLSKey string
	// Name is the server and connection name. Default "plexus-<hostname>".
	Name string
	// ConnectTimeout bounds start-up. Default 10s.
	ConnectTimeout time.Duration
	// Logger receives the embedded server's log lines. Default slog.Default().
	Logger *slog.Logger
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if _, _, err := ParseSync(c.Sync); err != nil {
		return err
	}
	if c.Listen != "" {
		if len(c.URLs) > 0 {
			return errors.New("engine: --nats-listen exposes the embedded engine and cannot be used with --nats")
		}
		if _, _, err := splitHostPort(c.Listen); err != nil {
			return fmt.Errorf("engine: listen %q: %w", c.Listen, err)
		}
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		return fmt.Errorf("engine: replicas %d: want 1 to 5", c.Replicas)
	}
	return c.validateAuth()
}

func (c *Config) defaults() {
	if c.DataDir == "" {
		c.DataDir = "./plexus-data"
	}
	if c.Sync == "" {
		c.Sync = SyncInterval
	}
	if c.Replicas == 0 || len(c.URLs) == 0 {
		c.Replicas = 1
	}
	if c.Name == "" {
		host, _ := os.Hostname()
		c.Name = "plexus-" + sanitizeName(host)
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if c.DiskReserve == 0 {
		c.DiskReserve = DefaultDiskReserve
	}
	if c.CheckInterval <= 0 {
		c.CheckInterval = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// ParseSync reads a Config.Sync value: always reports SyncAlways, else
// interval is the fsync interval.
func ParseSync(s string) (interval time.Duration, always bool, err error) {
	switch s {
	case "", SyncInterval:
		return DefaultSyncInterval, false, nil
	case SyncAlways:
		return 0, true, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < time.Millisecond || d > DefaultSyncInterval {
		return 0, false, fmt.Errorf("engine: sync %q: want %q, %q or a duration from 1ms to 2m such as \"100ms\"", s, SyncAlways, SyncInterval)
	}
	return d, false, nil
}

// Engine is a running or connected JetStream engine.
type Engine struct {
	cfg   Config
	srv   *server.Server // nil when external
	auth  []nats.Option  // how the in-process connection authenticates to a listening server
	nc    *nats.Conn
	js    jetstream.JetStream
	lock  *DirLock
	jsCfg server.JetStreamConfig // embedded: to restart JetStream after write errors

	monitor
}

// Start starts the embedded server (or connects to the external one) and
// returns when JetStream answers, or when ctx or the connect timeout ends.
func Start(ctx context.Context, cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	e := &Engine{cfg: cfg, lock: cfg.Lock}
	if len(cfg.URLs) == 0 {
		if e.lock == nil {
			l, err := LockDataDir(cfg.DataDir)
			if err != nil {
				return nil, err
			}
			e.lock = l
		}
		if err := e.startEmbedded(); err != nil {
			_ = e.lock.Release()
			return nil, err
		}
	}
	if err := e.connect(ctx); err != nil {
		e.shutdownServer()
		_ = e.lock.Release()
		return nil, err
	}
	e.startMonitor(ctx)
	return e, nil
}

func (e *Engine) startEmbedded() error {
	storeDir := filepath.Join(e.cfg.DataDir, "jetstream")
	if err := os.MkdirAll(storeDir, 0o700); err != nil {
		return fmt.Errorf("engine: data dir: %w", err)
	}
	interval, always, _ := ParseSync(e.cfg.Sync)
	opts := &server.Options{
		ServerName:   e.cfg.Name,
		JetStream:    true,
		StoreDir:     storeDir,
		DontListen:   e.cfg.Listen == "",
		NoSigs:       true,
		SyncAlways:   always,
		SyncInterval: interval,
		// Plexus's own payloads are small; 8 MiB leaves room for batches.
		MaxPayload: 8 << 20,
	}
	if e.cfg.Listen != "" {
		host, port, _ := splitHostPort(e.cfg.Listen)
		if port == 0 {
			port = server.RANDOM_PORT // the server reads 0 as its default, 4222
		}
		opts.Host, opts.Port = host, port
		auth, err := e.secureListener(opts)
		if err != nil {
			return err
		}
		e.auth = auth
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("engine: embedded server: %w", err)
	}
	srv.SetLoggerV2(&serverLogger{log: e.cfg.Logger.With("component", "nats")}, false, false, false)
	srv.Start()
	if !srv.ReadyForConnections(e.cfg.ConnectTimeout) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return errors.New("engine: embedded server did not become ready")
	}
	e.srv = srv
	if c := srv.JetStreamConfig(); c != nil {
		e.jsCfg = *c
		// EnableJetStream puts its "jetstream" directory under the dir it
		// is given, as the first start did.
		e.jsCfg.StoreDir = filepath.Dir(c.StoreDir)
	}
	return nil
}

func (e *Engine) connect(ctx context.Context) error {
	opts := []nats.Option{
		nats.Name(e.cfg.Name),
		nats.Timeout(e.cfg.ConnectTimeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(false),
	}
	opts = append(opts, e.connHandlers()...)
	url := strings.Join(e.cfg.URLs, ",")
	if e.srv != nil {
		opts = append(opts, nats.InProcessServer(e.srv))
		opts = append(opts, e.auth...)
		url = ""
	} else {
		auth, err := e.cfg.clientAuth()
		if err != nil {
			return err
		}
		opts = append(opts, auth...)
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return fmt.Errorf("engine: connect to %s: %w", e.describe(), err)
	}
	if err := checkServer(nc); err != nil {
		nc.Close()
		return err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return fmt.Errorf("engine: jetstream: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.ConnectTimeout)
	defer cancel()
	if err := accountInfo(ctx, js); err != nil {
		nc.Close()
		return err
	}
	e.nc, e.js = nc, js
	return nil
}

// Conn is the NATS connection every component shares.
func (e *Engine) Conn() *nats.Conn { return e.nc }

// JetStream is the JetStream context on Conn.
func (e *Engine) JetStream() jetstream.JetStream { return e.js }

// Embedded reports whether the engine runs inside this process.
func (e *Engine) Embedded() bool { return e.srv != nil }

// Replicas is the replica count components give the streams they create.
func (e *Engine) Replicas() int { return e.cfg.Replicas }

// ClientURL is the address other processes can connect to: the embedded
// server's listener, or the first external URL. Empty when the embedded
// server has no listener.
func (e *Engine) ClientURL() string {
	if e.srv != nil {
		if e.cfg.Listen == "" {
			return ""
		}
		return e.srv.ClientURL()
	}
	return e.cfg.URLs[0]
}

// ClientOptions are the credentials another client connects to ClientURL
// with: the listener's for an embedded engine (a TLS listener also needs
// the client to trust its certificate), the node's own, TLS included, for
// an external one.
func (e *Engine) ClientOptions() []nats.Option {
	if e.srv != nil {
		return append([]nats.Option(nil), e.auth...)
	}
	opts, _ := e.cfg.clientAuth()
	return opts
}

// Ready reports whether the connection is up, JetStream answers and the
// engine can accept writes (see Status); the error says why not and
// matches ErrUnavailable or ErrStorageFull.
func (e *Engine) Ready(ctx context.Context) error {
	if e.nc == nil || !e.nc.IsConnected() {
		return fmt.Errorf("%w: not connected", ErrUnavailable)
	}
	if _, err := e.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("engine: jetstream: %w", Classify(err))
	}
	return e.Status().Err()
}

// Stop drains the connection and shuts the embedded server down, bounded by
// ctx. It is safe to call more than once.
func (e *Engine) Stop(ctx context.Context) error {
	e.stopMonitor()
	var errs []error
	if e.nc != nil && !e.nc.IsClosed() {
		done := make(chan struct{})
		e.nc.SetClosedHandler(func(*nats.Conn) { close(done) })
		if err := e.nc.Drain(); err != nil {
			e.nc.Close()
		} else {
			select {
			case <-done:
			case <-ctx.Done():
				e.nc.Close()
				errs = append(errs, fmt.Errorf("engine: drain: %w", ctx.Err()))
			}
		}
	}
	e.shutdownServer()
	if err := e.lock.Release(); err != nil {
		errs = append(errs, fmt.Errorf("engine: release data dir lock: %w", err))
	}
	return errors.Join(errs...)
}

func (e *Engine) shutdownServer() {
	if e.srv == nil {
		return
	}
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
	e.srv = nil
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return host, port, nil
}

func sanitizeName(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "node"
	}
	return b.String()
}

// connHandlers log the connection's life (instead of the client library's
// prints to stderr): losing and regaining the server, and asynchronous
// errors such as a slow consumer.
func (e *Engine) connHandlers() []nats.Option {
	log := e.cfg.Logger
	return []nats.Option{
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if !nc.IsClosed() {
				log.Warn("engine connection lost; reconnecting", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("engine connection restored", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if sub != nil {
				log.Warn("engine subscription error", "subject", sub.Subject, "err", err)
				return
			}
			log.Warn("engine connection error", "err", err)
		}),
	}
}

// describe names the engine in messages.
func (e *Engine) describe() string {
	if len(e.cfg.URLs) == 0 {
		return "the embedded engine"
	}
	return strings.Join(redactURLs(e.cfg.URLs), ",")
}

// redactURLs hides passwords in URLs given as nats://user:pass@host.
func redactURLs(urls []string) []string {
	out := make([]string, len(urls))
	for i, u := range urls {
		if at := strings.LastIndexByte(u, '@'); at >= 0 {
			if scheme := strings.Index(u, "://"); scheme >= 0 && scheme < at {
				u = u[:scheme+3] + "***" + u[at:]
			}
		}
		out[i] = u
	}
	return out
}
