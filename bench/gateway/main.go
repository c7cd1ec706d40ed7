// Command gateway benchmarks Plexus's gateway side by side with nginx,
// HAProxy and Caddy in front of the same tiny Go backend, each with the same
// CPU budget, with load from wrk on loopback. Run it from the module root:
//
//	go run ./bench/gateway            # 1 core then 2 cores, 2 rounds of 10s
//	go run ./bench/gateway -quick     # 3s runs, one round (smoke run)
//
// It installs nginx, haproxy, caddy and wrk with apt-get when missing, runs
// each peer itself with its own configuration in a temp dir on 127.0.0.1,
// and stops everything it started, also on Ctrl-C. See docs/BENCHMARKS.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/plexushq/plexus/bench/internal/benchutil"
)

type options struct {
	duration time.Duration
	warmup   time.Duration
	conns    int
	rounds   int
	cores    []int
	only     []string
	tracing  bool
	profile  bool
	goproxy  bool
	baseline string
	gogc     string
	netsrv   bool
	keep     bool
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "backend" {
		runBackend(os.Args[2])
		return
	}
	if len(os.Args) == 4 && os.Args[1] == "goproxy" {
		runGoProxy(os.Args[2], os.Args[3])
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "node" {
		runProfiledNode(os.Args[2:])
		return
	}
	var o options
	var cores, only string
	var quick bool
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of one measured wrk run")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured wrk run per target before the rounds")
	flag.IntVar(&o.conns, "conns", 64, "wrk connections")
	flag.IntVar(&o.rounds, "rounds", 2, "measured rounds; targets alternate within each round")
	flag.StringVar(&cores, "cores", "1,2", "CPU budgets to run, comma-separated (1 and/or 2)")
	flag.StringVar(&only, "only", "", "targets to run (direct,plexus,nginx,haproxy,caddy); empty = all")
	flag.BoolVar(&o.tracing, "tracing", false, "also run Plexus with tracing sampled at 100%, at the shipped default (10%, parent-based) and at 1%; the baseline samples none")
	flag.BoolVar(&o.profile, "profile", false, "also profile Plexus's gateway under wrk (1 core) and print the top of the CPU profile")
	flag.BoolVar(&o.goproxy, "goproxy", false, "also run a bare net/http + httputil.ReverseProxy (the floor of a Go proxy)")
	flag.StringVar(&o.baseline, "baseline", "", "also run this plexus binary (an older build) as \"Plexus before\"")
	flag.BoolVar(&o.netsrv, "netserver", false, "also run Plexus with net/http's server in front of its upstream client (--gateway-server net/http)")
	flag.StringVar(&o.gogc, "gogc", "", "also run Plexus with these GOGC values, comma-separated (e.g. 200,400)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temp dir (configs, logs, access logs)")
	flag.BoolVar(&quick, "quick", false, "smoke run: 3s runs, 1s warm-up, one round")
	flag.Parse()
	if quick {
		o.duration, o.warmup, o.rounds = 3*time.Second, time.Second, 1
	}
	for _, c := range strings.Split(cores, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 || n > 2 {
			log.Fatalf("-cores %q: want 1 and/or 2", cores)
		}
		o.cores = append(o.cores, n)
	}
	if only != "" {
		o.only = strings.Split(strings.ToLower(only), ",")
	}
	ps, err := benchutil.NewProcs("plexus-bench-gateway-")
	if err != nil {
		log.Fatal(err)
	}
	benchutil.Main(func(ctx context.Context) error { return run(ctx, ps, o) },
		func() { ps.StopAll(o.keep) })
	if o.keep {
		log.Printf("kept %s", ps.Dir)
	}
}

func (o options) want(name string) bool {
	return len(o.only) == 0 || slices.Contains(o.only, strings.ToLower(name))
}

func run(ctx context.Context, ps *benchutil.Procs, o options) error {
	err := benchutil.EnsurePeers(ctx,
		benchutil.Peer{Package: "nginx", Binary: "nginx", Service: "nginx"},
		benchutil.Peer{Package: "haproxy", Binary: "haproxy", Service: "haproxy"},
		benchutil.Peer{Package: "caddy", Binary: "caddy", Service: "caddy"},
		benchutil.Peer{Package: "wrk", Binary: "wrk"},
	)
	if err != nil {
		return err
	}
	var bin string
	if o.want("plexus") {
		log.Print("building plexus")
		if bin, err = buildPlexus(ctx, ps); err != nil {
			return err
		}
	}
	fmt.Printf("# Gateway benchmark\n\n%s\n", benchutil.Machine())
	fmt.Printf("wrk: %d connections, %s per run, %d round(s), targets alternating; backend body %d bytes, keep-alive\n",
		o.conns, o.duration, o.rounds, len(backendBody))
	for _, c := range o.cores {
		if err := runSetup(ctx, ps, o, bin, setupFor(c)); err != nil {
			return err
		}
	}
	if o.profile {
		return profilePlexus(ctx, ps, o)
	}
	return nil
}

func setupFor(cores int) setup {
	if cores == 1 {
		// Proxy alone on CPU 0; wrk and the backend share CPU 1.
		return setup{cores: 1, proxyCPU: "0", loadCPU: "1", threads: 1}
	}
	// Only two CPUs: everything shares both.
	return setup{cores: 2, proxyCPU: "0,1", loadCPU: "", threads: 2}
}

func runSetup(ctx context.Context, ps *benchutil.Procs, o options, bin string, s setup) error {
	log.Printf("%d core(s): starting backend and peers", s.cores)
	targets, err := startTargets(ctx, ps, o, bin, s)
	defer func() {
		for _, t := range targets {
			ps.Stop(t.proc)
		}
	}()
	if err != nil {
		return err
	}
	for _, t := range targets {
		if _, err := benchutil.RunWrk(ctx, s.loadCPU, s.threads, o.conns, o.warmup, t.url); err != nil {
			return fmt.Errorf("%s warm-up: %w", t.name, err)
		}
	}
	results := map[string][]benchutil.Result{}
	for round := range o.rounds {
		// Rotate the order each round so no target always runs first or last.
		for i := range targets {
			t := targets[(i+round)%len(targets)]
			r, err := measure(ctx, o, s, t)
			if err != nil {
				return err
			}
			log.Printf("%dc round %d %-16s %9s req/s p50 %s p99 %s errors %d; %.2f cores, %s req per CPU-s; load %s",
				s.cores, round+1, t.name, benchutil.FmtRate(r.Rate), benchutil.FmtDur(r.P50), benchutil.FmtDur(r.P99),
				r.Errors, r.Cores, benchutil.FmtRate(r.PerCPU), loadAvg())
			results[t.name] = append(results[t.name], r)
		}
	}
	printTable(s, o, targets, results)
	return nil
}

// startTargets starts the backend and every wanted proxy and checks that
// each answers the backend's bytes. Targets started before an error are
// returned too, so that the caller stops them.
func startTargets(ctx context.Context, ps *benchutil.Procs, o options, bin string, s setup) ([]*target, error) {
	backend, bproc, err := startBackend(ctx, ps, s)
	if err != nil {
		return nil, err
	}
	var targets []*target
	if o.want("direct") {
		targets = append(targets, &target{name: "direct", url: "http://" + backend + "/", proc: bproc})
	}
	type starter struct {
		name  string
		start func() (*target, error)
	}
	starters := []starter{
		{"plexus", func() (*target, error) { return startPlexus(ctx, ps, s, bin, backend, 0, "", nil) }},
		{"nginx", func() (*target, error) { return startNginx(ctx, ps, s, backend) }},
		{"haproxy", func() (*target, error) { return startHAProxy(ctx, ps, s, backend) }},
		{"caddy", func() (*target, error) { return startCaddy(ctx, ps, s, backend) }},
	}
	if o.goproxy {
		starters = append(starters, starter{"goproxy", func() (*target, error) { return startGoProxy(ctx, ps, s, backend) }})
	}
	if o.baseline != "" {
		starters = append(starters, starter{"plexus", func() (*target, error) {
			return startPlexus(ctx, ps, s, o.baseline, backend, 0, " before", nil)
		}})
	}
	if o.netsrv {
		starters = append(starters, starter{"plexus", func() (*target, error) {
			return startPlexus(ctx, ps, s, bin, backend, 0, " net/http server", nil, "--gateway-server", "net/http")
		}})
	}
	for _, v := range strings.Split(o.gogc, ",") {
		if v = strings.TrimSpace(v); v != "" {
			starters = append(starters, starter{"plexus", func() (*target, error) {
				return startPlexus(ctx, ps, s, bin, backend, 0, " GOGC="+v, []string{"GOGC=" + v})
			}})
		}
	}
	if o.tracing {
		starters = append(starters,
			starter{"plexus", func() (*target, error) { return startPlexus(ctx, ps, s, bin, backend, 1, " trace100%", nil) }},
			starter{"plexus", func() (*target, error) {
				return startPlexus(ctx, ps, s, bin, backend, -1, " trace-default", nil)
			}},
			starter{"plexus", func() (*target, error) { return startPlexus(ctx, ps, s, bin, backend, 0.01, " trace1%", nil) }})
	}
	for _, st := range starters {
		if !o.want(st.name) {
			continue
		}
		t, err := st.start()
		if err != nil {
			return targets, fmt.Errorf("%s: %w", st.name, err)
		}
		targets = append(targets, t)
		if err := benchutil.WaitHTTP(ctx, t.url, 200, t.proc, 15*time.Second); err != nil {
			return targets, fmt.Errorf("%s: %w", t.name, err)
		}
		if err := checkBody(t.url); err != nil {
			return targets, fmt.Errorf("%s: %w", t.name, err)
		}
	}
	return targets, nil
}

// measure runs wrk once against t and reads the CPU its process group used.
func measure(ctx context.Context, o options, s setup, t *target) (benchutil.Result, error) {
	if t.proc.Exited() {
		return benchutil.Result{}, fmt.Errorf("%s exited: %s", t.name, t.proc.Tail(2000))
	}
	pgid := t.proc.Cmd.Process.Pid
	cpu0, t0 := benchutil.GroupCPU(pgid), time.Now()
	w, err := benchutil.RunWrk(ctx, s.loadCPU, s.threads, o.conns, o.duration, t.url)
	if err != nil {
		return benchutil.Result{}, fmt.Errorf("%s: %w", t.name, err)
	}
	cpu, wall := benchutil.GroupCPU(pgid)-cpu0, time.Since(t0)
	r := benchutil.Result{Name: t.name, Rate: w.RPS, P50: w.P50, P99: w.P99, Errors: w.Non2xx + w.SocketErrors}
	if cpu > 0 {
		r.PerCPU = float64(w.Requests) / cpu.Seconds()
		r.Cores = cpu.Seconds() / wall.Seconds()
	}
	return r, nil
}

func printTable(s setup, o options, targets []*target, results map[string][]benchutil.Result) {
	plexus := benchutil.Median(results["Plexus"])
	tb := benchutil.Table{
		Title: fmt.Sprintf("### %d core(s) (proxy CPUs %q, wrk -t%d -c%d on CPUs %q; median of %d)",
			s.cores, s.proxyCPU, s.threads, o.conns, orAll(s.loadCPU), o.rounds),
		Header: []string{"target", "req/s", "p50", "p99", "errors", "rounds req/s", "cores used", "req per CPU-s",
			"Plexus ÷ target req/s", "Plexus ÷ target req per CPU-s", "Plexus ÷ target p99"},
	}
	for _, t := range targets {
		m := benchutil.Median(results[t.name])
		var rounds []string
		for _, r := range results[t.name] {
			rounds = append(rounds, benchutil.FmtRate(r.Rate))
		}
		rr, re, rp := "–", "–", "–"
		if _, ok := results["Plexus"]; ok && t.name != "Plexus" {
			rr = benchutil.Ratio(plexus.Rate, m.Rate)
			re = benchutil.Ratio(plexus.PerCPU, m.PerCPU)
			rp = benchutil.Ratio(float64(plexus.P99), float64(m.P99))
		}
		tb.Add(t.name, benchutil.FmtRate(m.Rate), benchutil.FmtDur(m.P50), benchutil.FmtDur(m.P99),
			fmt.Sprint(m.Errors), strings.Join(rounds, " / "), fmt.Sprintf("%.2f", m.Cores), benchutil.FmtRate(m.PerCPU), rr, re, rp)
	}
	tb.Fprint(os.Stdout)
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func orAll(cpus string) string {
	if cpus == "" {
		return "all"
	}
	return cpus
}

func checkBody(url string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b := make([]byte, 1024)
	n, _ := resp.Body.Read(b)
	for n < len(backendBody) {
		m, err := resp.Body.Read(b[n:])
		n += m
		if err != nil {
			break
		}
	}
	if string(b[:n]) != backendBody {
		return fmt.Errorf("GET %s: body %q, want the backend's %d bytes", url, b[:n], len(backendBody))
	}
	return nil
}
