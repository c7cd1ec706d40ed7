// Command queue benchmarks durable publish+consume with 256-byte messages,
// 4 producers and 4 consumers: Plexus's Go SDK, Plexus's HTTP API (batched),
// raw JetStream on the same embedded engine (the limit) and RabbitMQ from
// Debian (durable queue, persistent messages, publisher confirms, manual
// acks). Run it from the module root:
//
//	go run ./bench/queue          # 200k messages per run, 2 rounds
//	go run ./bench/queue -quick   # smoke run
//
// It installs rabbitmq-server with apt-get when missing, runs it (and its
// epmd) itself on loopback ports with state in a temp dir, and stops
// everything it started, also on Ctrl-C. See docs/BENCHMARKS.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/plexushq/plexus/bench/internal/benchutil"
	"github.com/plexushq/plexus/engine"
)

type options struct {
	spec       runSpec
	rounds     int
	latRate    int
	latDur     time.Duration
	sync       string
	only       []string
	keep       bool
	cpuprofile string
	server     string
	engine     benchutil.EngineFlags
}

func main() {
	o := options{spec: runSpec{producers: 4, consumers: 4, size: 256}}
	var quick bool
	var only string
	flag.IntVar(&o.spec.messages, "messages", 200000, "messages per throughput run")
	flag.IntVar(&o.spec.batch, "batch", 64, "messages per producer batch (publishes pipelined, then all confirmed)")
	flag.IntVar(&o.spec.inFlight, "inflight", 1024, "closed loop: at most this many published-not-yet-consumed messages")
	flag.IntVar(&o.rounds, "rounds", 2, "rounds; systems alternate within each round")
	flag.IntVar(&o.latRate, "latency-rate", 2000, "fixed total rate (msgs/s) of the latency run; 0 skips it")
	flag.DurationVar(&o.latDur, "latency-duration", 5*time.Second, "length of the latency run")
	flag.StringVar(&o.sync, "sync", "interval", "embedded engine durability, comma-separated to compare several: interval (Plexus default, fsync every 2m), always, or an fsync interval such as 100ms or 1s")
	flag.StringVar(&only, "only", "", "systems to run: sdk,http,jetstream,rabbitmq (empty = all)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temp dir")
	flag.StringVar(&o.server, "server", "h1", "HTTP/1.1 server of the HTTP API: h1 (as the admin listener of plexus up) or net/http (--admin-server net/http)")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of this process (Plexus, the engine and the drivers) to this file")
	flag.BoolVar(&quick, "quick", false, "smoke run: 20k messages, 1 round, 2s latency run")
	o.engine.Register(flag.CommandLine)
	flag.Parse()
	if quick {
		o.spec.messages, o.rounds, o.latDur = 20000, 1, 2*time.Second
	}
	if only != "" {
		o.only = strings.Split(strings.ToLower(only), ",")
	}
	ps, err := benchutil.NewProcs("plexus-bench-queue-")
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

func (o options) want(name string) bool {
	return len(o.only) == 0 || slices.Contains(o.only, name)
}

func run(ctx context.Context, ps *benchutil.Procs, o options) error {
	var brokers []broker
	syncs := strings.Split(o.sync, ",")
	if o.engine.NATS == "" {
		for _, sy := range syncs {
			eng, err := engine.Start(ctx, engine.Config{DataDir: ps.Path("engine-" + sy), Sync: sy,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				return err
			}
			label := ""
			if len(syncs) > 1 || o.engine.Cluster > 0 {
				label = "sync " + sy
			}
			bs, stop, err := plexusBrokers(ctx, ps, o, eng, label)
			if err != nil {
				return err
			}
			defer stop()
			brokers = append(brokers, bs...)
		}
	}
	if o.engine.NATS != "" || o.engine.Cluster > 0 {
		eng, err := o.engine.Start(ctx, ps, "")
		if err != nil {
			return err
		}
		bs, stop, err := plexusBrokers(ctx, ps, o, eng, o.engine.Label())
		if err != nil {
			return err
		}
		defer stop()
		brokers = append(brokers, bs...)
	}
	if o.want("rabbitmq") {
		err := benchutil.EnsurePeers(ctx, benchutil.Peer{Package: "rabbitmq-server",
			Binary: "/usr/lib/rabbitmq/bin/rabbitmq-server", Service: "rabbitmq-server"})
		if err != nil {
			return err
		}
		log.Print("starting RabbitMQ")
		rb, err := startRabbit(ctx, ps)
		if err != nil {
			return err
		}
		defer rb.Close()
		brokers = append(brokers, rb)
	}
	fmt.Printf("# Queue benchmark\n\n%s\n", benchutil.Machine())
	fmt.Printf("%d producers, %d consumers, %d-byte messages, durable; throughput: %d messages per run, batches of %d, at most %d in flight; latency: %d msgs/s for %s; %s\n",
		o.spec.producers, o.spec.consumers, o.spec.size, o.spec.messages, o.spec.batch, o.spec.inFlight, o.latRate, o.latDur, o.engine.Describe(o.sync))
	thr := map[string][]benchutil.Result{}
	lat := map[string][]benchutil.Result{}
	for round := range o.rounds {
		for i := range brokers {
			b := brokers[(i+round)%len(brokers)]
			r, err := runOnce(ctx, b, o.spec)
			if err != nil {
				return err
			}
			log.Printf("round %d %-14s throughput %9s msgs/s p50 %s p99 %s (%s)", round+1, b.Name(),
				benchutil.FmtRate(r.Rate), benchutil.FmtDur(r.P50), benchutil.FmtDur(r.P99), r.Note)
			thr[b.Name()] = append(thr[b.Name()], r)
			if o.latRate > 0 {
				ls := o.spec
				ls.rate, ls.duration = o.latRate, o.latDur
				r, err := runOnce(ctx, b, ls)
				if err != nil {
					return err
				}
				log.Printf("round %d %-14s latency at %d/s: p50 %s p99 %s", round+1, b.Name(), o.latRate,
					benchutil.FmtDur(r.P50), benchutil.FmtDur(r.P99))
				lat[b.Name()] = append(lat[b.Name()], r)
			}
		}
	}
	printTables(o, brokers, thr, lat)
	return nil
}

// plexusBrokers runs the Plexus systems and raw JetStream on eng (which
// the returned stop stops too); a label names them after their engine
// (" (sync 100ms)", " (3-node cluster, R3)") when several engines run.
func plexusBrokers(ctx context.Context, ps *benchutil.Procs, o options, eng *engine.Engine, label string) ([]broker, func(), error) {
	stops := []func(){func() { _ = eng.Stop(context.Background()) }}
	stop := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	var out []broker
	if o.want("sdk") || o.want("http") {
		pl, err := startPlexus(ctx, ps, eng, o)
		if err != nil {
			stop()
			return nil, nil, err
		}
		stops = append(stops, pl.Close)
		for _, b := range pl.brokers() {
			if (b.Name() == "Plexus SDK" && o.want("sdk")) || (b.Name() == "Plexus HTTP" && o.want("http")) {
				out = append(out, b)
			}
		}
	}
	if o.want("jetstream") {
		out = append(out, &rawJS{eng: eng, js: eng.JetStream()})
	}
	if label != "" {
		for i, b := range out {
			out[i] = labelled{b, label}
		}
	}
	return out, stop, nil
}

// labelled names a broker after its engine.
type labelled struct {
	broker
	label string
}

func (l labelled) Name() string { return l.broker.Name() + " (" + l.label + ")" }

// embeddedRef is the same system on the (first) embedded engine, for the
// external engine's rows: the ratio a 3-replica cluster costs.
func embeddedRef(o options, b broker) string {
	l, ok := b.(labelled)
	if !ok || l.label != o.engine.Label() || o.engine.NATS != "" {
		return b.Name()
	}
	return labelled{l.broker, "sync " + strings.Split(o.sync, ",")[0]}.Name()
}

// rawRef is the raw JetStream run on the same engine as b.
func rawRef(b broker) string {
	if l, ok := b.(labelled); ok {
		return "raw JetStream (" + l.label + ")"
	}
	return "raw JetStream"
}

func printTables(o options, brokers []broker, thr, lat map[string][]benchutil.Result) {
	tb := benchutil.Table{
		Title:  fmt.Sprintf("### Throughput (median of %d; latency here includes the closed-loop backlog of %d)", o.rounds, o.spec.inFlight),
		Header: []string{"system", "msgs/s", "p50", "p99", "dups", "rounds msgs/s", "÷ raw JetStream", "÷ RabbitMQ", "÷ embedded"},
	}
	for _, b := range brokers {
		m := benchutil.Median(thr[b.Name()])
		var rounds []string
		for _, r := range thr[b.Name()] {
			rounds = append(rounds, benchutil.FmtRate(r.Rate))
		}
		row := []string{b.Name(), benchutil.FmtRate(m.Rate), benchutil.FmtDur(m.P50), benchutil.FmtDur(m.P99),
			fmt.Sprint(m.Errors), strings.Join(rounds, " / ")}
		for _, ref := range []string{rawRef(b), "RabbitMQ"} {
			rm, ok := thr[ref]
			if !ok || ref == b.Name() {
				row = append(row, "–")
				continue
			}
			row = append(row, benchutil.Ratio(m.Rate, benchutil.Median(rm).Rate))
		}
		if emb, ok := thr[embeddedRef(o, b)]; ok && embeddedRef(o, b) != b.Name() {
			row = append(row, benchutil.Ratio(m.Rate, benchutil.Median(emb).Rate))
		} else {
			row = append(row, "–")
		}
		tb.Add(row...)
	}
	tb.Fprint(os.Stdout)
	if o.latRate == 0 {
		return
	}
	lt := benchutil.Table{
		Title:  fmt.Sprintf("### End-to-end latency at a fixed %d msgs/s, single publishes (median of %d)", o.latRate, o.rounds),
		Header: []string{"system", "p50", "p99", "p99 ÷ raw JetStream", "p99 ÷ RabbitMQ"},
	}
	for _, b := range brokers {
		m := benchutil.Median(lat[b.Name()])
		row := []string{b.Name(), benchutil.FmtDur(m.P50), benchutil.FmtDur(m.P99)}
		for _, ref := range []string{rawRef(b), "RabbitMQ"} {
			rm, ok := lat[ref]
			if !ok || ref == b.Name() {
				row = append(row, "–")
				continue
			}
			row = append(row, benchutil.Ratio(float64(m.P99), float64(benchutil.Median(rm).P99)))
		}
		lt.Add(row...)
	}
	lt.Fprint(os.Stdout)
}
