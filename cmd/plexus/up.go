package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/server"
)

// nodeFlags are the flags of `up` and `serve` (docs/operations.md).
type nodeFlags struct {
	cfg         server.Config
	nats        string
	logLevel    string
	logFormat   string
	diskReserve string
}

func (f *nodeFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.cfg.DataDir, "data-dir", "./plexus-data", "directory of the embedded engine's store and the admin token")
	fl.StringVar(&f.cfg.GatewayAddr, "gateway-addr", ":3000", "public gateway listener")
	fl.StringVar(&f.cfg.AdminAddr, "admin-addr", "127.0.0.1:3100", "admin listener (registry, queues, events, traces, metrics, dashboard)")
	fl.StringVar(&f.cfg.AdminToken, "admin-token", "", "admin bearer token (default: generated once into <data-dir>/admin-token)")
	fl.StringVar(&f.cfg.ConfigFile, "config", "", "YAML configuration file (gateway, queues)")
	fl.StringVar(&f.nats, "nats", "", "external NATS URLs, comma-separated (default: embedded engine)")
	fl.StringVar(&f.cfg.NATSListen, "nats-listen", "", "expose the embedded engine on host:port for other nodes (requires authentication: the --nats-* credentials, or a password generated into <data-dir>/nats-password)")
	a := &f.cfg.NATSAuth
	fl.StringVar(&a.Creds, "nats-creds", "", "credentials file (user JWT and nkey seed) for --nats")
	fl.StringVar(&a.Nkey, "nats-nkey", "", "file with a user nkey seed: for --nats, or the user --nats-listen accepts")
	fl.StringVar(&a.User, "nats-user", "", "user for --nats, or the user --nats-listen requires")
	fl.StringVar(&a.Password, "nats-password", "", "password of --nats-user (prefer PLEXUS_NATS_PASSWORD)")
	fl.StringVar(&a.Token, "nats-token", "", "token for --nats, or the token --nats-listen requires (prefer PLEXUS_NATS_TOKEN)")
	fl.StringVar(&a.TLSCA, "nats-tls-ca", "", "CA file: verifies the --nats servers, or the client certificates --nats-listen then requires")
	fl.StringVar(&a.TLSCert, "nats-tls-cert", "", "certificate file: this node's client certificate for --nats, or the --nats-listen server certificate (TLS only)")
	fl.StringVar(&a.TLSKey, "nats-tls-key", "", "key file of --nats-tls-cert")
	fl.IntVar(&f.cfg.NATSReplicas, "nats-replicas", 1, "replicas of streams and buckets on an external cluster (a node never lowers existing ones)")
	fl.DurationVar(&f.cfg.MaxViewAge, "max-view-age", server.DefaultMaxViewAge, "a gateway-only node is not ready once its registry view is older than this")
	fl.StringVar(&f.cfg.Sync, "sync", "interval", "embedded store durability: always (fsync each write), interval (fsync every 2m) or a fsync interval such as 100ms or 1s")
	fl.StringVar(&f.diskReserve, "disk-reserve", "64MiB", "free space the embedded engine keeps on its disk: below it writes answer 507 and /ready fails (0: off)")
	fl.DurationVar(&f.cfg.RequestTimeout, "request-timeout", 5*time.Second, "bound on the engine calls of one admin API request (then 503 with Retry-After)")
	fl.IntVar(&f.cfg.MaxStreams, "max-streams", 1000, "concurrent server-sent-event streams per node (event subscriptions, registry watches)")
	fl.IntVar(&f.cfg.MaxQueues, "max-queues", 1000, "number of queues, dead-letter queues included")
	fl.StringVar(&f.cfg.TLSCert, "tls-cert", "", "TLS certificate for the gateway listener (enables HTTP/2)")
	fl.StringVar(&f.cfg.TLSKey, "tls-key", "", "TLS key for the gateway listener")
	fl.StringVar(&f.cfg.GatewayServer, "gateway-server", "h1", "HTTP/1.1 server of a cleartext gateway listener: h1 or net/http (TLS always uses net/http)")
	fl.StringVar(&f.cfg.AdminServer, "admin-server", "h1", "HTTP/1.1 server of the admin listener (queue, event store, registry APIs): h1 or net/http")
	fl.DurationVar(&f.cfg.ShutdownTimeout, "shutdown-timeout", 15*time.Second, "bound on a graceful stop")
	fl.DurationVar(&f.cfg.ClientHeaderTimeout, "client-header-timeout", 10*time.Second, "bound on reading a request's line and headers (both listeners)")
	fl.DurationVar(&f.cfg.ClientBodyTimeout, "client-body-timeout", 60*time.Second, "longest wait for the next bytes of a request body (both listeners; then 408)")
	fl.DurationVar(&f.cfg.ClientSendTimeout, "client-send-timeout", 60*time.Second, "longest wait for a client to take the next bytes of a gateway answer")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&f.logFormat, "log-format", "text", "json or text")
}

func newUpCmd() *cobra.Command {
	f := &nodeFlags{}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run every role in one process (embedded engine unless --nats)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.cfg.Roles = server.AllRoles
			return runNode(cmd.Context(), f)
		},
	}
	f.register(cmd)
	return cmd
}

func newServeCmd() *cobra.Command {
	f := &nodeFlags{}
	var roles string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the given roles (gateway, control, checker)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := server.ParseRoles(roles)
			if err != nil {
				return err
			}
			f.cfg.Roles = r
			return runNode(cmd.Context(), f)
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&roles, "roles", strings.Join(server.AllRoles, ","), "roles to run, comma-separated")
	return cmd
}

func newLogger(level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want json or text", format)
}

// runNode starts a node and runs it until ctx ends (SIGINT/SIGTERM); SIGHUP
// reloads the configuration file.
func runNode(ctx context.Context, f *nodeFlags) error {
	log, err := newLogger(f.logLevel, f.logFormat)
	if err != nil {
		return err
	}
	slog.SetDefault(log)
	f.cfg.Logger = log
	f.cfg.Version = version
	if f.cfg.DiskReserve, err = engine.ParseSize(f.diskReserve); err != nil {
		return fmt.Errorf("--disk-reserve: %w", err)
	}
	if f.cfg.DiskReserve == 0 {
		f.cfg.DiskReserve = -1 // "0": no reserve (the engine reads 0 as its default)
	}
	if f.nats != "" {
		for _, u := range strings.Split(f.nats, ",") {
			if u = strings.TrimSpace(u); u != "" {
				f.cfg.NATS = append(f.cfg.NATS, u)
			}
		}
	}
	f.cfg.PrintToken = func(token, path string) {
		fmt.Fprintf(os.Stderr, "\nAdmin token (shown once, saved in %s):\n\n    %s\n\n", path, token)
	}
	node, err := server.New(f.cfg)
	if err != nil {
		return err
	}
	if err := node.Start(ctx); err != nil {
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			_ = node.Reload() // logs its own outcome
			continue
		case <-ctx.Done():
		}
		break
	}
	log.Info("shutting down", "timeout", f.cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), f.cfg.ShutdownTimeout)
	defer cancel()
	if err := node.Stop(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}
