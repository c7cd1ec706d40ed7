package benchutil

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os/exec"
	"strings"
	"time"

	"github.com/plexushq/plexus/engine"
)

// EngineFlags choose the engine a benchmark runs on: the embedded one
// (default), an external server or cluster (-nats), or a cluster of real
// nats-server processes the benchmark starts itself (-cluster 3).
type EngineFlags struct {
	// NATS is a comma-separated list of external server URLs.
	NATS string
	// Creds, User, Password and Token authenticate to the external server.
	Creds, User, Password, Token string
	// Replicas of the streams and buckets on the external engine. Default:
	// the cluster size with -cluster, else 1.
	Replicas int
	// Cluster starts this many nats-server processes in cluster mode on
	// loopback (built from the nats-server module Plexus embeds), with
	// their stores in the benchmark's temp dir.
	Cluster int
	// CPUs pins the started servers (taskset list), "" = unpinned.
	CPUs string
}

// Register adds -nats, -nats-creds, -nats-user, -nats-password,
// -nats-token, -replicas, -cluster and -cluster-cpus.
func (f *EngineFlags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.NATS, "nats", "", "external engine: NATS server URLs, comma-separated (default: embedded engine)")
	fs.StringVar(&f.Creds, "nats-creds", "", "credentials file for -nats")
	fs.StringVar(&f.User, "nats-user", "", "user for -nats")
	fs.StringVar(&f.Password, "nats-password", "", "password for -nats")
	fs.StringVar(&f.Token, "nats-token", "", "token for -nats")
	fs.IntVar(&f.Replicas, "replicas", 0, "replicas of streams and buckets on an external engine (default: the -cluster size, else 1)")
	fs.IntVar(&f.Cluster, "cluster", 0, "start a cluster of this many nats-server processes on loopback and run on it (e.g. 3)")
	fs.StringVar(&f.CPUs, "cluster-cpus", "", "taskset CPU list for the -cluster servers (default unpinned)")
}

// Describe says which engines a run used, for the report: with -cluster,
// the embedded engine (sync) and the cluster side by side.
func (f *EngineFlags) Describe(sync string) string {
	switch {
	case f.Cluster > 0:
		return fmt.Sprintf("engines: embedded (sync %s) and a %d-node nats-server cluster on loopback (child processes, built from the module), %d replicas",
			sync, f.Cluster, f.replicas())
	case f.NATS != "":
		return fmt.Sprintf("engine: external %s, %d replicas", f.NATS, f.replicas())
	}
	return "engine: embedded, sync " + sync
}

// Label names the external engine in result tables.
func (f *EngineFlags) Label() string {
	if f.Cluster > 0 {
		return fmt.Sprintf("%d-node cluster, R%d", f.Cluster, f.replicas())
	}
	return fmt.Sprintf("external, R%d", f.replicas())
}

func (f *EngineFlags) replicas() int {
	switch {
	case f.Replicas > 0:
		return f.Replicas
	case f.Cluster > 0:
		return f.Cluster
	}
	return 1
}

// Start starts or connects the external engine (-nats), or the cluster
// (-cluster, its servers children of ps, stopped by ps.StopAll), or else
// an embedded one with sync.
func (f *EngineFlags) Start(ctx context.Context, ps *Procs, sync string) (*engine.Engine, error) {
	cfg := engine.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), ConnectTimeout: 30 * time.Second}
	switch {
	case f.Cluster > 0 && f.NATS != "":
		return nil, fmt.Errorf("-cluster and -nats exclude each other")
	case f.Cluster > 0:
		urls, err := StartNATSCluster(ctx, ps, f.Cluster, f.CPUs)
		if err != nil {
			return nil, err
		}
		cfg.URLs = urls
	case f.NATS != "":
		for _, u := range strings.Split(f.NATS, ",") {
			if u = strings.TrimSpace(u); u != "" {
				cfg.URLs = append(cfg.URLs, u)
			}
		}
		cfg.CredsFile, cfg.User, cfg.Password, cfg.Token = f.Creds, f.User, f.Password, f.Token
	default:
		cfg.DataDir, cfg.Sync = ps.Path("engine"), sync
	}
	if len(cfg.URLs) > 0 {
		cfg.Replicas = f.replicas()
	}
	return engine.Start(ctx, cfg)
}

// StartNATSCluster builds nats-server from the module Plexus embeds
// (go build, into ps's dir) and starts n of them in cluster mode on
// loopback ports, JetStream on, stores under ps's dir, max_payload 8 MiB as
// the embedded engine has. It returns their client URLs once every server
// accepts connections; the caller's engine connect waits for JetStream.
func StartNATSCluster(ctx context.Context, ps *Procs, n int, cpus string) ([]string, error) {
	bin := ps.Path("nats-server")
	log.Printf("building nats-server for a %d-node cluster", n)
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/nats-io/nats-server/v2")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build nats-server: %v: %s", err, out)
	}
	clientPorts, routePorts := make([]int, n), make([]int, n)
	for i := range n {
		var err error
		if clientPorts[i], err = FreePort(); err != nil {
			return nil, err
		}
		if routePorts[i], err = FreePort(); err != nil {
			return nil, err
		}
	}
	var routes []string
	for _, p := range routePorts {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	urls := make([]string, n)
	for i := range n {
		conf := fmt.Sprintf(`server_name: n%d
listen: 127.0.0.1:%d
max_payload: 8MB
jetstream { store_dir: %q }
cluster {
  name: plexus-bench
  listen: 127.0.0.1:%d
  routes: [%s]
}
`, i, clientPorts[i], ps.Path(fmt.Sprintf("nats-%d", i)), routePorts[i], strings.Join(routes, ", "))
		path, err := ps.WriteFile(fmt.Sprintf("nats-%d.conf", i), conf)
		if err != nil {
			return nil, err
		}
		pr, err := ps.Start(fmt.Sprintf("nats-%d", i), cpus, nil, bin, "-c", path)
		if err != nil {
			return nil, err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", clientPorts[i])
		if err := WaitTCP(ctx, addr, pr, 20*time.Second); err != nil {
			return nil, err
		}
		urls[i] = "nats://" + addr
	}
	return urls, nil
}
