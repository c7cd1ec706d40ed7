package queue

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// collectTimeout bounds the engine calls of one scrape.
const collectTimeout = 5 * time.Second

var (
	descMessages = prometheus.NewDesc("plexus_queue_messages",
		"Messages a queue holds now, by state: ready (deliverable), delayed (not before their time), in_flight (received, not acknowledged).",
		[]string{"queue", "state"}, nil)
	descDeadLetters = prometheus.NewDesc("plexus_queue_dead_letters",
		"Messages in a queue's dead-letter queue.", []string{"queue"}, nil)
	descOldest = prometheus.NewDesc("plexus_queue_oldest_message_age_seconds",
		"Age of the oldest message published to a queue and not acknowledged yet (0 when the queue is empty).",
		[]string{"queue"}, nil)
	descConsumers = prometheus.NewDesc("plexus_queue_consumers",
		"Active consumers of a queue (subscriptions and receivers seen in the last 5 minutes).", []string{"queue"}, nil)
)

// NewCollector exports what c's queues hold, read from the engine at
// scrape time: plexus_queue_messages{queue,state} (ready, delayed,
// in_flight), plexus_queue_dead_letters{queue},
// plexus_queue_oldest_message_age_seconds{queue} and
// plexus_queue_consumers{queue}. Register it once per registry.
func NewCollector(c *Broker) prometheus.Collector { return statsCollector{c} }

type statsCollector struct{ c *Broker }

func (s statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descMessages, descDeadLetters, descOldest, descConsumers} {
		ch <- d
	}
}

func (s statsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), collectTimeout)
	defer cancel()
	infos, err := s.c.List(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descMessages, err)
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	now := s.c.opts.Clock.Now()
	for _, in := range infos {
		gauge(descMessages, float64(max(in.QueueSize-in.InFlight, 0)), in.Name, "ready")
		gauge(descMessages, float64(in.Delayed), in.Name, "delayed")
		gauge(descMessages, float64(in.InFlight), in.Name, "in_flight")
		gauge(descConsumers, float64(in.ActiveConsumers), in.Name)
		if in.Config.DeadLetterOf == "" {
			gauge(descDeadLetters, float64(in.DeadLetterQueueSize), in.Name)
		}
		age := 0.0
		if t, ok := s.c.oldest(ctx, in.Name); ok {
			age = max(now.Sub(t).Seconds(), 0)
		}
		gauge(descOldest, age, in.Name)
	}
}

// initQueue creates queue's counters at 0 (published, received,
// processed, failed, rejected, redriven, dead-lettered by reason), so their
// rates and alerts work before the first message; forQueue calls it when a
// client first uses the queue.
func (m *metrics) initQueue(queue string) {
	for _, v := range []*prometheus.CounterVec{m.published, m.received, m.processed, m.failed, m.rejected, m.redriven} {
		v.WithLabelValues(queue)
	}
	for _, r := range []string{ReasonExpired, ReasonOverflow, ReasonMaxAttempts} {
		m.deadLettered.WithLabelValues(queue, r)
	}
}

// oldest returns the publish time of the oldest message of queue that is
// not acknowledged yet (ready or in flight; the work-queue stream removes
// a message when it is acknowledged), over its priority levels.
func (b *Broker) oldest(ctx context.Context, queue string) (time.Time, bool) {
	q, err := b.state(ctx, queue)
	if err != nil {
		return time.Time{}, false
	}
	var first time.Time
	for p := range levels {
		if q.levels.Load()&(1<<p) == 0 {
			continue
		}
		raw, err := q.stream.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(q.n.ready[p]))
		if err != nil { // ErrMsgNotFound: the level is empty
			continue
		}
		ts := raw.Time
		if ns, err := parseNanos(raw.Header.Get(hdrTime)); err == nil {
			ts = ns
		}
		if first.IsZero() || ts.Before(first) {
			first = ts
		}
	}
	return first, !first.IsZero()
}

type metrics struct {
	published, received, processed, failed, rejected, redriven *prometheus.CounterVec
	deadLettered                                               *prometheus.CounterVec
}

// queueMetrics are one queue's hot-path counters, looked up once.
type queueMetrics struct {
	published, received, processed, failed prometheus.Counter
}

func (m *metrics) forQueue(q string) queueMetrics {
	m.initQueue(q)
	return queueMetrics{
		published: m.published.WithLabelValues(q), received: m.received.WithLabelValues(q),
		processed: m.processed.WithLabelValues(q), failed: m.failed.WithLabelValues(q),
	}
}

func newMetrics(reg prometheus.Registerer) *metrics {
	cv := func(name, help string, labels ...string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plexus_queue_" + name, Help: help}, labels)
		if reg != nil {
			if err := reg.Register(v); err != nil {
				var are prometheus.AlreadyRegisteredError
				if errors.As(err, &are) {
					return are.ExistingCollector.(*prometheus.CounterVec)
				}
			}
		}
		return v
	}
	return &metrics{
		published:    cv("published_messages_total", "Messages stored by publishes.", "queue"),
		received:     cv("received_messages_total", "Messages handed to receivers.", "queue"),
		processed:    cv("processed_messages_total", "Messages acknowledged.", "queue"),
		failed:       cv("failed_attempts_total", "Nacked or timed-out attempts.", "queue"),
		rejected:     cv("rejected_messages_total", "Publishes refused because the queue was full.", "queue"),
		redriven:     cv("redriven_messages_total", "Dead letters moved back into their queue.", "queue"),
		deadLettered: cv("dead_lettered_messages_total", "Messages moved to the dead-letter queue.", "queue", "reason"),
	}
}
