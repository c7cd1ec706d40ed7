// Command events benchmarks Plexus's event store against raw JetStream
// publishes on the same embedded engine (the limit) and an append-only
// PostgreSQL table with a unique (stream, version) index: single-event
// appends with an expected version (sequential and 8 concurrent streams),
// 100-event batch appends, read-all throughput and a subscription catching
// up over 1M events. Run it from the module root:
//
//	go run ./bench/events          # full: 1M events for read-all and catch-up
//	go run ./bench/events -quick   # smoke run: 50k events
//
// It installs postgresql with apt-get when missing, runs initdb and postgres
// itself in a temp dir on a loopback port (as the postgres user when run as
// root) and stops everything it started, also on Ctrl-C.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/plexushq/plexus/bench/internal/benchutil"
	"github.com/plexushq/plexus/engine"
)

type options struct {
	seq, conc, batches, total, rounds int
	singles                           int
	sync                              string
	only                              []string
	keep                              bool
	cpuprofile                        string
	engine                            benchutil.EngineFlags
}

func main() {
	var o options
	var quick bool
	var only string
	flag.IntVar(&o.seq, "seq", 5000, "sequential single-event appends per round")
	flag.IntVar(&o.conc, "concurrent", 2000, "single-event appends per stream, 8 streams in parallel, per round")
	flag.IntVar(&o.batches, "batches", 100, "100-event batch appends per round")
	flag.IntVar(&o.total, "events", 1000000, "events in each store for read-all and catch-up (filled with 1000-event batches)")
	flag.IntVar(&o.rounds, "rounds", 2, "rounds of the append phases; systems alternate within each")
	flag.IntVar(&o.singles, "singles", 200000, "events Plexus also reads and catches up over when each was appended alone (one engine message each); 0: skip")
	flag.StringVar(&o.sync, "sync", "interval", "embedded engine durability: interval (Plexus default) or always")
	flag.StringVar(&only, "only", "", "systems: plexus,jetstream,postgres,postgres-async (empty = all)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temp dir")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of this process (Plexus, the engine and the drivers) to this file")
	flag.BoolVar(&quick, "quick", false, "smoke run: fewer appends, 50k events, one round")
	o.engine.Register(flag.CommandLine)
	flag.Parse()
	if quick {
		o.seq, o.conc, o.batches, o.total, o.rounds, o.singles = 1000, 250, 20, 50000, 1, 20000
	}
	if only != "" {
		o.only = strings.Split(strings.ToLower(only), ",")
	}
	ps, err := benchutil.NewProcs("plexus-bench-events-")
	if err != nil {
		log.Fatal(err)
	}
	stopProfile, err := benchutil.StartCPUProfile(o.cpuprofile)
	if err != nil {
		log.Fatal(err)
	}
	benchutil.Main(func(ctx context.Context) error { return run(ctx, ps, o) }, func() {
		stopProfile()
		ps.StopAll(o.keep)
	})
}

func (o options) want(name string) bool { return len(o.only) == 0 || slices.Contains(o.only, name) }

// phase is one measured workload.
type phase struct {
	title string
	unit  string
	res   map[string][]benchutil.Result
}

func run(ctx context.Context, ps *benchutil.Procs, o options) error {
	var eng *engine.Engine
	var err error
	if o.engine.NATS != "" {
		eng, err = o.engine.Start(ctx, ps, "") // -nats: the external engine only
	} else {
		eng, err = engine.Start(ctx, engine.Config{DataDir: ps.Path("engine"), Sync: o.sync,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	}
	if err != nil {
		return err
	}
	defer eng.Stop(context.Background())
	stores, err := openStores(ctx, ps, eng, "", o)
	defer func() {
		for _, s := range stores {
			s.Close()
		}
	}()
	if err != nil {
		return err
	}
	if o.engine.Cluster > 0 {
		// Plexus and raw JetStream again on the cluster, beside the embedded.
		ceng, err := o.engine.Start(ctx, ps, "")
		if err != nil {
			return err
		}
		defer ceng.Stop(context.Background())
		co := o
		co.only = []string{"plexus", "jetstream"}
		if len(o.only) > 0 {
			co.only = slices.DeleteFunc(slices.Clone(o.only), func(s string) bool { return s != "plexus" && s != "jetstream" })
		}
		cs, err := openStores(ctx, ps, ceng, o.engine.Label(), co)
		stores = append(stores, cs...)
		if err != nil {
			return err
		}
	}
	return runPhases(ctx, ps, o, stores)
}

// openStores builds the systems to compare; those opened before an error
// are returned too, so that the caller closes them.
func openStores(ctx context.Context, ps *benchutil.Procs, eng *engine.Engine, label string, o options) ([]store, error) {
	var stores []store
	if o.want("plexus") {
		pl, err := newPlexus(ctx, eng)
		if err != nil {
			return stores, err
		}
		pl.label = label
		stores = append(stores, pl)
		if label == "" {
			stores = append(stores, pl.pagedView())
		}
	}
	if o.want("jetstream") {
		r, err := newRawJS(ctx, eng)
		if err != nil {
			return stores, err
		}
		rp, err := newRawJS(ctx, eng)
		if err != nil {
			return stores, err
		}
		r.label, rp.label, rp.pipelined = label, label, true
		stores = append(stores, rawCounter{r}, rp)
	}
	if !o.want("postgres") && !o.want("postgres-async") {
		return stores, nil
	}
	err := benchutil.EnsurePeers(ctx, benchutil.Peer{Package: "postgresql",
		Binary: "/usr/lib/postgresql/*/bin/postgres", Service: "postgresql"})
	if err != nil {
		return stores, err
	}
	log.Print("starting PostgreSQL")
	srv, err := startPostgres(ctx, ps)
	if err != nil {
		return stores, err
	}
	if o.want("postgres") {
		stores = append(stores, pgCounter{&pgStore{srv: srv, syncCommit: true}})
	}
	if o.want("postgres-async") {
		stores = append(stores, &pgStore{srv: srv})
	}
	return stores, nil
}

// runPhases runs the append rounds, then the bulk phases, and prints.
func runPhases(ctx context.Context, ps *benchutil.Procs, o options, stores []store) error {
	fmt.Printf("# Event store benchmark\n\n%s\n%s; events ~150-byte JSON\n", benchutil.Machine(), o.engine.Describe(o.sync))
	appends := []struct {
		ph               *phase
		writers, n, size int
	}{
		{&phase{title: "Sequential single-event appends, expected version (1 writer)", unit: "appends/s"}, 1, o.seq, 1},
		{&phase{title: "Single-event appends, expected version, 8 streams in parallel", unit: "appends/s"}, 8, o.conc, 1},
		{&phase{title: "100-event batch appends, expected version (1 writer)", unit: "events/s"}, 1, o.batches * 100, 100},
	}
	var phases []*phase
	for _, a := range appends {
		a.ph.res = map[string][]benchutil.Result{}
		phases = append(phases, a.ph)
	}
	for round := range o.rounds {
		for pi, a := range appends {
			for i := range stores {
				si := (i + round) % len(stores)
				s := stores[si]
				r, err := appendPhase(ctx, s, fmt.Sprintf("r%d-p%d-s%d", round, pi, si), a.writers, a.n, a.size)
				if errors.Is(err, errSkip) {
					continue
				}
				if err != nil {
					return err
				}
				log.Printf("round %d %-24s %-22s %9s %s p50 %s p99 %s", round+1, a.ph.title[:min(24, len(a.ph.title))], s.Name(),
					benchutil.FmtRate(r.Rate), a.ph.unit, benchutil.FmtDur(r.P50), benchutil.FmtDur(r.P99))
				a.ph.res[s.Name()] = append(a.ph.res[s.Name()], r)
			}
		}
	}
	bulk, err := bulkPhases(ctx, o, stores)
	if err != nil {
		return err
	}
	if o.want("plexus") && o.singles > 0 && o.engine.NATS == "" {
		if err := singlesPhases(ctx, ps, o, bulk[1], bulk[2]); err != nil {
			return err
		}
	}
	phases = append(phases, bulk...)
	for _, ph := range phases {
		printPhase(ph, stores)
	}
	return nil
}

// bulkPhases fills every store to o.total events, then reads them all and
// catches a new subscriber up over them.
func bulkPhases(ctx context.Context, o options, stores []store) ([]*phase, error) {
	fill := &phase{title: "Fill: 1000-event batch appends, 8 writers (not a target)", unit: "events/s", res: map[string][]benchutil.Result{}}
	read := &phase{title: fmt.Sprintf("Read all %d events in global order (pages of 1000)", o.total), unit: "events/s", res: map[string][]benchutil.Result{}}
	catch := &phase{title: fmt.Sprintf("New subscription catching up over %d events", o.total), unit: "events/s", res: map[string][]benchutil.Result{}}
	counts := map[store]int{}
	for _, s := range stores {
		c, ok := s.(counter)
		if _, view := s.(sharer); !ok || view {
			continue // shares another system's store (non-atomic raw, async PostgreSQL, paged Plexus)
		}
		have, err := c.Count(ctx) // counted just before filling: the append phases added to it
		if err != nil {
			return nil, fmt.Errorf("%s count: %w", s.Name(), err)
		}
		per := max(0, (o.total-have+7)/8)
		if per > 0 {
			log.Printf("filling %s with %d events", s.Name(), 8*per)
			r, err := appendPhase(ctx, s, "fill", 8, per, 1000)
			if err != nil {
				return nil, err
			}
			fill.res[s.Name()] = append(fill.res[s.Name()], r)
		}
		counts[s] = have + 8*per
	}
	for _, s := range stores {
		if v, ok := s.(sharer); ok {
			if n, ok := counts[v.shares()]; ok {
				counts[s] = n
			}
		}
	}
	for _, s := range stores {
		n, ok := counts[s]
		if !ok {
			continue
		}
		r, err := timed(s.Name(), n, func() (int, error) { return s.ReadAll(ctx) })
		if errors.Is(err, errSkip) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s read all: %w", s.Name(), err)
		}
		log.Printf("read all %-22s %9s events/s (%s)", s.Name(), benchutil.FmtRate(r.Rate), r.Note)
		read.res[s.Name()] = append(read.res[s.Name()], r)
	}
	for _, s := range stores {
		n, ok := counts[s]
		if !ok {
			continue
		}
		r, err := timed(s.Name(), 0, func() (int, error) { return n, s.CatchUp(ctx, "catchup", n) })
		if errors.Is(err, errSkip) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s catch-up: %w", s.Name(), err)
		}
		log.Printf("catch-up %-22s %9s events/s (%s)", s.Name(), benchutil.FmtRate(r.Rate), r.Note)
		catch.res[s.Name()] = append(catch.res[s.Name()], r)
	}
	return []*phase{fill, read, catch}, nil
}

func printPhase(ph *phase, stores []store) {
	tb := benchutil.Table{Title: "### " + ph.title,
		Header: []string{"system", ph.unit, "p50 per call", "p99 per call", "rounds", "Plexus ÷ this"}}
	plexus, hasPlexus := ph.res["Plexus"]
	pm := benchutil.Median(plexus)
	var names, extra []string
	for _, s := range stores {
		names = append(names, s.Name())
	}
	for name := range ph.res { // rows of systems outside stores (Plexus, one event per append)
		if !slices.Contains(names, name) {
			extra = append(extra, name)
		}
	}
	slices.Sort(extra)
	for _, name := range append(names, extra...) {
		rs, ok := ph.res[name]
		if !ok {
			continue
		}
		m := benchutil.Median(rs)
		var rounds []string
		for _, r := range rs {
			rounds = append(rounds, benchutil.FmtRate(r.Rate))
		}
		ratio := "–"
		switch {
		case hasPlexus && !strings.HasPrefix(name, "Plexus"):
			ratio = benchutil.Ratio(pm.Rate, m.Rate)
		case name != "Plexus":
			ratio = variantRatios(ph, name, m.Rate)
		}
		tb.Add(name, benchutil.FmtRate(m.Rate), benchutil.FmtDur(m.P50), benchutil.FmtDur(m.P99), strings.Join(rounds, " / "), ratio)
	}
	tb.Fprint(os.Stdout)
}

// variantRatios compares another way of running Plexus (paged reads, one
// event per append, a cluster) with the peers: raw JetStream on the same
// engine, and PostgreSQL.
func variantRatios(ph *phase, name string, rate float64) string {
	raw := "raw JetStream"
	if i := strings.Index(name, " ("); i >= 0 {
		raw += name[i:] // the same engine's label
	}
	var parts []string
	for _, peer := range []string{raw, "PostgreSQL"} {
		if rs, ok := ph.res[peer]; ok {
			parts = append(parts, "÷ "+peer+" "+benchutil.Ratio(rate, benchutil.Median(rs).Rate))
		}
	}
	if len(parts) == 0 {
		return "–"
	}
	return strings.Join(parts, ", ")
}
