package telemetry

import "github.com/prometheus/client_golang/prometheus"

// RegisterMetrics exposes the store's counters on reg (nil: nothing):
// plexus_telemetry_store_traces, plexus_telemetry_store_bytes,
// plexus_telemetry_spans_received_total, plexus_telemetry_spans_dropped_total
// and plexus_telemetry_traces_evicted_total.
func (s *Store) RegisterMetrics(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	return reg.Register(storeCollector{s})
}

var (
	descTraces  = prometheus.NewDesc("plexus_telemetry_store_traces", "Traces held in the node's trace store.", nil, nil)
	descBytes   = prometheus.NewDesc("plexus_telemetry_store_bytes", "Estimated memory of the spans held in the trace store.", nil, nil)
	descAdded   = prometheus.NewDesc("plexus_telemetry_spans_received_total", "Spans stored (received over OTLP or ended in this process).", nil, nil)
	descDropped = prometheus.NewDesc("plexus_telemetry_spans_dropped_total", "Spans not stored: duplicates or over the per-trace span limit.", nil, nil)
	descEvicted = prometheus.NewDesc("plexus_telemetry_traces_evicted_total", "Traces evicted to keep the store within its count and byte bounds.", nil, nil)
)

type storeCollector struct{ s *Store }

func (c storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTraces, descBytes, descAdded, descDropped, descEvicted} {
		ch <- d
	}
}

func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	ch <- prometheus.MustNewConstMetric(descTraces, prometheus.GaugeValue, float64(st.Traces))
	ch <- prometheus.MustNewConstMetric(descBytes, prometheus.GaugeValue, float64(st.Bytes))
	ch <- prometheus.MustNewConstMetric(descAdded, prometheus.CounterValue, float64(st.SpansAdded))
	ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(st.SpansDropped))
	ch <- prometheus.MustNewConstMetric(descEvicted, prometheus.CounterValue, float64(st.TracesEvicted))
}
