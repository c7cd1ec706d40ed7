package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/plexushq/plexus/bench/internal/benchutil"
	"github.com/plexushq/plexus/server"
)

// runProfiledNode is `plexus serve --roles gateway,control` in this
// process (the same server package the binary runs), writing a CPU
// profile from start to SIGTERM. The real binary has no pprof endpoint.
func runProfiledNode(args []string) {
	fs := flag.NewFlagSet("node", flag.ExitOnError)
	var cfg server.Config
	var profile string
	fs.StringVar(&cfg.DataDir, "data-dir", "", "")
	fs.StringVar(&cfg.GatewayAddr, "gateway-addr", "", "")
	fs.StringVar(&cfg.AdminAddr, "admin-addr", "", "")
	fs.StringVar(&cfg.AdminToken, "admin-token", "", "")
	fs.StringVar(&cfg.ConfigFile, "config", "", "")
	fs.StringVar(&profile, "cpuprofile", "", "")
	_ = fs.Parse(args)
	cfg.Roles = []string{server.RoleGateway, server.RoleControl}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	n, err := server.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	if err := n.Start(ctx); err != nil {
		log.Fatal(err)
	}
	f, err := os.Create(profile)
	if err != nil {
		log.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		log.Fatal(err)
	}
	<-ctx.Done()
	pprof.StopCPUProfile()
	f.Close()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = n.Stop(sctx)
}

// profilePlexus runs the profiled node on the 1-core budget under wrk and
// prints the top of its CPU profile.
func profilePlexus(ctx context.Context, ps *benchutil.Procs, o options) error {
	s := setupFor(1)
	backend, _, err := startBackend(ctx, ps, s)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	prof := ps.Path("plexus.cpu.pprof")
	t, err := startPlexusCmd(ctx, ps, s, backend, "-profiled", nil, plexusConfig(0), func(dir, gw, admin, cfg string) []string {
		return []string{self, "node", "-data-dir", dir + "/data", "-gateway-addr", gw, "-admin-addr", admin,
			"-admin-token", adminToken, "-config", cfg, "-cpuprofile", prof}
	})
	if err != nil {
		return err
	}
	w, err := benchutil.RunWrk(ctx, s.loadCPU, s.threads, o.conns, o.duration, t.url)
	if err != nil {
		return err
	}
	ps.Stop(t.proc)
	fmt.Printf("\n### CPU profile of the gateway (1 core, tracing off, %s of wrk at %s req/s)\n\n```\n",
		o.duration, benchutil.FmtRate(w.RPS))
	for _, mode := range []string{"-top", "-top -cum"} {
		args := append([]string{"tool", "pprof"}, strings.Fields(mode)...)
		args = append(args, "-nodecount=35", self, prof)
		out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("go tool pprof: %w: %s", err, out)
		}
		fmt.Printf("$ go tool pprof %s\n%s\n", mode, out)
	}
	fmt.Println("```")
	if o.keep {
		fmt.Printf("profile: %s (binary %s)\n", prof, self)
	}
	return nil
}
