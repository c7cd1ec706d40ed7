// Package server wires Plexus's components into a node: it reads the node's
// configuration, starts the engine and the roles it is asked to run, serves
// the gateway and admin listeners, and shuts everything down gracefully.
package server

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/internal/httpguard"
	"github.com/plexushq/plexus/internal/httpx"
	"github.com/plexushq/plexus/queue"
)

// Roles a node can run.
const (
	RoleGateway = "gateway"
	RoleControl = "control"
	RoleChecker = "checker"
)

// AllRoles is what `plexus up` runs.
var AllRoles = []string{RoleGateway, RoleControl, RoleChecker}

// Config is a node's configuration; the CLI fills it from flags and PLEXUS_*
// variables. The zero value plus Roles runs an embedded engine in
// ./plexus-data with the default listeners.
type Config struct {
	// Roles to run; see AllRoles.
	Roles []string
	// DataDir for the embedded engine and the admin token. Default ./plexus-data.
	DataDir string
	// GatewayAddr is the public listener. Default ":3000".
	GatewayAddr string
	// AdminAddr is the admin listener. Default "127.0.0.1:3100".
	AdminAddr string
	// AdminToken protects the admin API. Empty: read DataDir/admin-token, or
	// generate it there (mode 0600) at first start and print it once.
	AdminToken string
	// ConfigFile is the YAML configuration file (gateway:, queues:,
	// telemetry:; docs/operations.md). Optional.
	ConfigFile string
	// NATS are external engine URLs; empty means embedded.
	NATS []string
	// NATSListen exposes the embedded engine on host:port.
	NATSListen string
	// NATSAuth authenticates the node to an external engine (NATS), or
	// is what the embedded engine's listener (NATSListen) requires; without
	// it the listener requires a generated password (DataDir/nats-password).
	NATSAuth NATSAuth
	// NATSReplicas for streams on an external cluster (default 1). A node
	// never lowers the replicas of an existing stream or bucket: with fewer
	// than they have it refuses to start.
	NATSReplicas int
	// MaxViewAge is how old a gateway-only node's registry view may get
	// (the time since its watch last proved itself current) before the
	// node reports not ready. Default 30s.
	MaxViewAge time.Duration
	// Sync is "interval" (default), "always", or a duration such as "100ms":
	// how often the embedded store fsyncs (engine.ParseSync).
	Sync string
	// DiskReserve is the free space the embedded engine keeps on its data
	// dir's file system; below it writes that add data answer 507 and the
	// node is not ready. Default engine.DefaultDiskReserve; negative: off.
	DiskReserve int64
	// RequestTimeout bounds the engine calls made for one admin API request;
	// a request that runs out answers 503 with Retry-After. Default 5s.
	RequestTimeout time.Duration
	// MaxStreams caps the concurrent server-sent-event streams (event
	// subscriptions and registry watches) of the node; past it they answer
	// 503 with Retry-After. Default 1000.
	MaxStreams int
	// MaxQueues caps the number of queues (dead-letter queues included);
	// creating one more answers 409. Default 1000.
	MaxQueues int
	// TLSCert and TLSKey enable TLS (and HTTP/2) on the gateway listener.
	TLSCert, TLSKey string
	// GatewayServer is the HTTP/1.1 server of a cleartext gateway
	// listener: "h1" (default, internal/h1) or "net/http". A TLS listener
	// always uses net/http (HTTP/2).
	GatewayServer string
	// AdminServer is the HTTP/1.1 server of the (cleartext) admin
	// listener, which carries the queue, event store and registry APIs:
	// "h1" (default, internal/h1) or "net/http".
	AdminServer string
	// ShutdownTimeout bounds a graceful stop. Default 15s.
	ShutdownTimeout time.Duration
	// ClientHeaderTimeout bounds reading a request's line and headers on
	// both listeners; a slower client's connection is closed. Default 10s.
	ClientHeaderTimeout time.Duration
	// ClientBodyTimeout is the longest wait for the next bytes of a request
	// body on both listeners; a client that stops sending gets 408 and its
	// connection closed, and nothing is charged to an upstream. Default 60s
	// (nginx's client_body_timeout).
	ClientBodyTimeout time.Duration
	// ClientSendTimeout is the longest wait for a client to take the next
	// bytes of a gateway answer; then its connection is closed. Default 60s
	// (nginx's send_timeout).
	ClientSendTimeout time.Duration
	// Version is reported by /health.
	Version string
	// Logger for the node. Default slog.Default().
	Logger *slog.Logger
	// Stdout receives the one-time print of a generated token. Default: the log.
	PrintToken func(token, path string)
}

func (c *Config) defaults() {
	if len(c.Roles) == 0 {
		c.Roles = AllRoles
	}
	if c.DataDir == "" {
		c.DataDir = "./plexus-data"
	}
	if c.GatewayAddr == "" {
		c.GatewayAddr = ":3000"
	}
	if c.AdminAddr == "" {
		c.AdminAddr = "127.0.0.1:3100"
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 15 * time.Second
	}
	lim := c.limits()
	c.ClientHeaderTimeout, c.ClientBodyTimeout, c.ClientSendTimeout = lim.ReadHeaderTimeout, lim.BodyIdleTimeout, lim.SendIdleTimeout
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = httpx.DefaultRequestTimeout
	}
	if c.MaxStreams <= 0 {
		c.MaxStreams = httpx.DefaultMaxStreams
	}
	if c.MaxQueues <= 0 {
		c.MaxQueues = queue.DefaultMaxQueues
	}
	if c.MaxViewAge <= 0 {
		c.MaxViewAge = DefaultMaxViewAge
	}
}

// NATSAuth holds the engine connection's credentials and TLS files (see
// engine.Config): one of Creds, Nkey, User and Password, or Token; TLS CA,
// certificate and key.
type NATSAuth struct {
	Creds, Nkey, User, Password, Token string
	TLSCA, TLSCert, TLSKey             string
}

// DefaultMaxViewAge is MaxViewAge's default.
const DefaultMaxViewAge = 30 * time.Second

// Validate reports a configuration that cannot work.
func (c *Config) Validate() error {
	for _, r := range c.Roles {
		if !slices.Contains(AllRoles, r) {
			return fmt.Errorf("unknown role %q: want some of %s", r, strings.Join(AllRoles, ","))
		}
	}
	if c.ClientHeaderTimeout < 0 || c.ClientBodyTimeout < 0 || c.ClientSendTimeout < 0 {
		return fmt.Errorf("client timeouts must not be negative")
	}
	if c.GatewayServer != "" && c.GatewayServer != GatewayServerH1 && c.GatewayServer != GatewayServerNetHTTP {
		return fmt.Errorf("gateway server %q: want %s or %s", c.GatewayServer, GatewayServerH1, GatewayServerNetHTTP)
	}
	if c.AdminServer != "" && c.AdminServer != GatewayServerH1 && c.AdminServer != GatewayServerNetHTTP {
		return fmt.Errorf("admin server %q: want %s or %s", c.AdminServer, GatewayServerH1, GatewayServerNetHTTP)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("--tls-cert and --tls-key go together")
	}
	if c.TLSCert != "" {
		if _, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey); err != nil {
			return fmt.Errorf("gateway TLS: %w", err)
		}
	}
	return c.engineConfig().Validate()
}

// The HTTP/1.1 servers of cleartext listeners (Config.GatewayServer,
// Config.AdminServer).
const (
	GatewayServerH1      = "h1"
	GatewayServerNetHTTP = "net/http"
)

// limits are the listeners' client limits.
func (c *Config) limits() httpguard.Limits {
	return httpguard.Limits{ReadHeaderTimeout: c.ClientHeaderTimeout, BodyIdleTimeout: c.ClientBodyTimeout,
		SendIdleTimeout: c.ClientSendTimeout}.WithDefaults()
}

func (c *Config) has(role string) bool { return slices.Contains(c.Roles, role) }

func (c *Config) engineConfig() engine.Config {
	return engine.Config{
		DataDir:     c.DataDir,
		URLs:        c.NATS,
		Listen:      c.NATSListen,
		Sync:        c.Sync,
		DiskReserve: c.DiskReserve,
		Replicas:    c.NATSReplicas,
		CredsFile:   c.NATSAuth.Creds,
		NkeyFile:    c.NATSAuth.Nkey,
		User:        c.NATSAuth.User,
		Password:    c.NATSAuth.Password,
		Token:       c.NATSAuth.Token,
		TLSCA:       c.NATSAuth.TLSCA,
		TLSCert:     c.NATSAuth.TLSCert,
		TLSKey:      c.NATSAuth.TLSKey,
		Logger:      c.Logger,
	}
}

// embedded reports whether the node runs its own engine (and so owns the
// data dir's store).
func (c *Config) embedded() bool { return len(c.NATS) == 0 }

// ParseRoles reads a comma-separated role list.
func ParseRoles(s string) ([]string, error) {
	var roles []string
	for _, r := range strings.Split(s, ",") {
		r = strings.TrimSpace(r)
		if r == "" {
			continue
		}
		if !slices.Contains(AllRoles, r) {
			return nil, fmt.Errorf("unknown role %q: want some of %s", r, strings.Join(AllRoles, ","))
		}
		if !slices.Contains(roles, r) {
			roles = append(roles, r)
		}
	}
	if len(roles) == 0 {
		return nil, fmt.Errorf("no roles given: want some of %s", strings.Join(AllRoles, ","))
	}
	return roles, nil
}
