package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Info is a queue's options and statistics (API.md).
type Info struct {
	Name                 string `json:"name"`
	Config               Config `json:"config"`
	QueueSize            int64  `json:"queueSize"` // ready and in flight
	Delayed              int64  `json:"delayed"`
	InFlight             int64  `json:"inFlight"`
	DeadLetterQueueSize  int64  `json:"deadLetterQueueSize"`
	PublishedMessages    int64  `json:"publishedMessages"`
	ProcessedMessages    int64  `json:"processedMessages"`
	ErrorMessages        int64  `json:"errorMessages"`
	DeadLetteredMessages int64  `json:"deadLetteredMessages"`
	ActiveConsumers      int64  `json:"activeConsumers"`
	TotalConsumers       int64  `json:"totalConsumers"`
}

// MarshalJSON writes a RetryNow retry delay as the "0s" it was given as.
func (i Info) MarshalJSON() ([]byte, error) {
	type plain Info
	type view struct {
		plain
		Config configView `json:"config"`
	}
	return json.Marshal(view{plain: plain(i), Config: configView{i.Config}})
}

// configView is a Config as the API shows it.
type configView struct{ Config }

func (c configView) MarshalJSON() ([]byte, error) {
	type plain Config
	p := plain(c.Config)
	if c.RetryDelay != RetryNow {
		return json.Marshal(p)
	}
	p.RetryDelay = 0
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return append(append([]byte(nil), b[:len(b)-1]...), `,"retryDelay":"0s"}`...), nil
}

// counters are the cumulative counts kept in the engine per queue.
type counters struct {
	Published    int64 `json:"published"`
	Processed    int64 `json:"processed"`
	Failed       int64 `json:"failed"`
	DeadLettered int64 `json:"deadLettered"`
}

// Stats returns a queue's options and statistics.
func (c *Client) Stats(ctx context.Context, queue string) (*Info, error) {
	q, err := c.state(ctx, queue)
	if err != nil {
		return nil, err
	}
	return c.info(ctx, q)
}

// List returns every queue with its statistics, sorted by name.
func (c *Client) List(ctx context.Context) ([]*Info, error) {
	names, err := c.Names(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*Info, 0, len(names))
	for _, n := range names {
		info, err := c.Stats(ctx, n)
		if errors.Is(err, ErrQueueNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	return out, nil
}

func (c *Client) info(ctx context.Context, q *qstate) (*Info, error) {
	cfg := q.cfg.Load()
	info := &Info{Name: q.n.queue, Config: *cfg}
	si, err := q.stream.Info(ctx, jetstream.WithSubjectFilter(q.n.delayedAll))
	if err != nil {
		return nil, fmt.Errorf("queue %q: stats: %w", q.n.queue, err)
	}
	for _, n := range si.State.Subjects {
		info.Delayed += int64(n)
	}
	info.QueueSize = int64(si.State.Msgs) - info.Delayed
	if info.InFlight, err = c.inFlight(ctx, q); err != nil {
		return nil, err
	}
	info.InFlight = min(info.InFlight, info.QueueSize)
	if cfg.DeadLetterOf == "" {
		if dq, err := c.state(ctx, cfg.DeadLetterQueue); err == nil {
			if dsi, err := dq.stream.Info(ctx); err == nil {
				info.DeadLetterQueueSize = int64(dsi.State.Msgs)
			}
		}
	}
	stored, _, _ := c.loadCounters(ctx, q.n.queue)
	info.PublishedMessages = stored.Published + q.published.Load()
	info.ProcessedMessages = stored.Processed + q.processed.Load()
	info.ErrorMessages = stored.Failed + q.failed.Load()
	info.DeadLetteredMessages = stored.DeadLettered + q.deadLettered.Load()
	info.ActiveConsumers = q.consumersActive.Load() + c.recentReceivers(q.n.queue)
	info.TotalConsumers = q.consumersTotal.Load()
	return info, nil
}

func (c *Client) loadCounters(ctx context.Context, queue string) (counters, uint64, error) {
	var ct counters
	e, err := c.kv.Get(ctx, statsKeyPrefix+queue)
	if err != nil {
		return ct, 0, err
	}
	_ = json.Unmarshal(e.Value(), &ct)
	return ct, e.Revision(), nil
}

// flushCounters adds this client's counter deltas to the engine's totals
// with compare-and-set, so several nodes add up.
func (c *Client) flushCounters(ctx context.Context, q *qstate) error {
	d := counters{q.published.Swap(0), q.processed.Swap(0), q.failed.Swap(0), q.deadLettered.Swap(0)}
	if d == (counters{}) {
		return nil
	}
	var err error
	for range 5 {
		var ct counters
		var rev uint64
		ct, rev, err = c.loadCounters(ctx, q.n.queue)
		if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			break
		}
		ct.Published += d.Published
		ct.Processed += d.Processed
		ct.Failed += d.Failed
		ct.DeadLettered += d.DeadLettered
		b, _ := json.Marshal(ct)
		if rev == 0 {
			_, err = c.kv.Create(ctx, statsKeyPrefix+q.n.queue, b)
		} else {
			_, err = c.kv.Update(ctx, statsKeyPrefix+q.n.queue, b, rev)
		}
		if err == nil {
			return nil
		}
	}
	q.published.Add(d.Published)
	q.processed.Add(d.Processed)
	q.failed.Add(d.Failed)
	q.deadLettered.Add(d.DeadLettered)
	return fmt.Errorf("queue %q: flush counters: %w", q.n.queue, err)
}

// consumerSeen counts a named HTTP receiver once (bounded per queue).
func (c *Client) consumerSeen(q *qstate, name string) {
	if name == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[string]time.Time{}
	}
	key := q.n.queue + "\x00" + name
	if _, ok := c.seen[key]; !ok {
		if len(c.seen) >= 10000 {
			return
		}
		q.consumersTotal.Add(1)
	}
	c.seen[key] = time.Now()
}

// Maintain runs one round of housekeeping for every queue: it dead-letters
// expired messages that no receiver has taken yet and flushes counters.
// The node's queue service calls it periodically.
func (c *Client) Maintain(ctx context.Context) error {
	names, err := c.Names(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		q, err := c.state(ctx, n)
		if err != nil {
			continue
		}
		if err := c.expire(ctx, q, 1000); err != nil {
			errs = append(errs, err)
		}
		if err := c.flushCounters(ctx, q); err != nil {
			errs = append(errs, err)
		}
	}
	c.expireSeen()
	return errors.Join(errs...)
}

// recentReceivers counts the named HTTP receivers of queue seen in the
// last 5 minutes.
func (c *Client) recentReceivers(queue string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int64
	prefix := queue + "\x00"
	for k, t := range c.seen {
		if strings.HasPrefix(k, prefix) && time.Since(t) <= 5*time.Minute {
			n++
		}
	}
	return n
}

func (c *Client) expireSeen() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, t := range c.seen {
		if time.Since(t) > 5*time.Minute {
			delete(c.seen, k)
		}
	}
}

// expire dead-letters up to max expired messages that were never
// delivered (stream sequence above the level's delivered floor).
func (c *Client) expire(ctx context.Context, q *qstate, max int) error {
	cfg := q.cfg.Load()
	if cfg.TTL.D() <= 0 {
		return nil
	}
	for p := range levels {
		if q.levels.Load()&(1<<p) == 0 {
			continue
		}
		ci, err := q.consumerInfo(ctx, p)
		if err != nil {
			return err
		}
		for seq := ci.Delivered.Stream + 1; max > 0; max-- {
			raw, err := q.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(q.n.ready[p]))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				break
			}
			if err != nil {
				return err
			}
			seq = raw.Sequence + 1
			ts := raw.Time
			if ns, err := parseNanos(raw.Header.Get(hdrTime)); err == nil {
				ts = ns
			}
			if c.opts.Now().Sub(ts) <= cfg.TTL.D() {
				break
			}
			src := source{subject: raw.Subject, header: raw.Header, data: raw.Data, seq: raw.Sequence}
			if err := c.deadLetter(ctx, q, src, ReasonExpired, 0, ""); err != nil {
				return err
			}
			if err := q.stream.DeleteMsg(ctx, raw.Sequence); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
				return err
			}
		}
	}
	return nil
}

func sortStrings(s []string) { slices.Sort(s) }

func (q *qstate) consumerInfo(ctx context.Context, p int) (*jetstream.ConsumerInfo, error) {
	cons, err := q.stream.Consumer(ctx, consumerName(p)) // fetches the info
	if err != nil {
		return nil, err
	}
	return cons.CachedInfo(), nil
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
