package server

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The node's own gauges, read at scrape time so they never go stale:
// whether the node serves (/ready's answer) and what the engine holds.
var (
	descNodeReady = prometheus.NewDesc("plexus_node_ready",
		"1 when the node can do its work (what GET /ready reports: control needs an engine that accepts writes, "+
			"a gateway a fresh registry view), else 0.", nil, nil)
	descEngineWritable = prometheus.NewDesc("plexus_engine_writable",
		"1 while the engine accepts writes (connected, JetStream and every stream the node uses have a leader, storage not full), else 0.", nil, nil)
	descEngineUp = prometheus.NewDesc("plexus_engine_up",
		"1 when the engine connection is up and JetStream answers, else 0.", nil, nil)
	descEngineStorage = prometheus.NewDesc("plexus_engine_storage_bytes",
		"JetStream storage used by the node's account, by storage type (file, memory).", []string{"storage"}, nil)
	descEngineStreams = prometheus.NewDesc("plexus_engine_streams",
		"JetStream streams of the node's account.", nil, nil)
	descEngineConsumers = prometheus.NewDesc("plexus_engine_consumers",
		"JetStream consumers of the node's account.", nil, nil)
)

// engineScrapeTimeout bounds the engine call one scrape makes.
const engineScrapeTimeout = 2 * time.Second

// nodeCollector exports the node's readiness and the engine's account
// state. One AccountInfo call per scrape answers both "is the engine up"
// and "what does it hold".
type nodeCollector struct{ n *Node }

func (c nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descNodeReady, descEngineUp, descEngineWritable, descEngineStorage, descEngineStreams, descEngineConsumers} {
		ch <- d
	}
}

func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	up := 0.0
	if eng := c.n.eng; eng != nil && eng.Conn() != nil && eng.Conn().IsConnected() {
		ctx, cancel := context.WithTimeout(context.Background(), engineScrapeTimeout)
		ai, err := eng.JetStream().AccountInfo(ctx)
		cancel()
		if err == nil {
			up = 1
			gauge(descEngineStorage, float64(ai.Store), "file")
			gauge(descEngineStorage, float64(ai.Memory), "memory")
			gauge(descEngineStreams, float64(ai.Streams))
			gauge(descEngineConsumers, float64(ai.Consumers))
		}
	}
	gauge(descEngineUp, up)
	writable, ready := 0.0, 0.0
	if c.n.eng != nil && c.n.eng.Status().Writable {
		writable = 1
	}
	gauge(descEngineWritable, writable)
	ctx, cancel := context.WithTimeout(context.Background(), engineScrapeTimeout)
	defer cancel()
	if c.n.eng != nil && c.n.readiness(ctx) == nil {
		ready = 1
	}
	gauge(descNodeReady, ready)
}
