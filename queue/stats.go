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
)

// Info is a queue's options and statistics (QueueInfo in docs/openapi.yaml).
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

// counters are the cumulative counts kept in the engine per queue.
type counters struct {
	Published    int64 `json:"published"`
	Processed    int64 `json:"processed"`
	Failed       int64 `json:"failed"`
	DeadLettered int64 `json:"deadLettered"`
}

// Stats returns a queue's options and statistics.
func (b *Broker) Stats(ctx context.Context, queue string) (*Info, error) {
	q, err := b.state(ctx, queue)
	if err != nil {
		return nil, err
	}
	return b.info(ctx, q)
}

// List returns every queue with its statistics, sorted by name.
func (b *Broker) List(ctx context.Context) ([]*Info, error) {
	names, err := b.Names(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*Info, 0, len(names))
	for _, n := range names {
		info, err := b.Stats(ctx, n)
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

func (b *Broker) info(ctx context.Context, q *qstate) (*Info, error) {
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
	if info.InFlight, err = b.inFlight(ctx, q); err != nil {
		return nil, err
	}
	info.InFlight = min(info.InFlight, info.QueueSize)
	if cfg.DeadLetterOf == "" {
		if dq, err := b.state(ctx, cfg.DeadLetterQueue); err == nil {
			if dsi, err := dq.stream.Info(ctx); err == nil {
				info.DeadLetterQueueSize = int64(dsi.State.Msgs)
			}
		}
	}
	stored, _, _ := b.loadCounters(ctx, q.n.queue)
	info.PublishedMessages = stored.Published + q.published.Load()
	info.ProcessedMessages = stored.Processed + q.processed.Load()
	info.ErrorMessages = stored.Failed + q.failed.Load()
	info.DeadLetteredMessages = stored.DeadLettered + q.deadLettered.Load()
	info.ActiveConsumers = q.consumersActive.Load() + b.recentReceivers(q.n.queue)
	info.TotalConsumers = q.consumersTotal.Load()
	return info, nil
}

func (b *Broker) loadCounters(ctx context.Context, queue string) (counters, uint64, error) {
	var ct counters
	e, err := b.kv.Get(ctx, statsKeyPrefix+queue)
	if err != nil {
		return ct, 0, err
	}
	_ = json.Unmarshal(e.Value(), &ct)
	return ct, e.Revision(), nil
}

// flushCounters adds this client's counter deltas to the engine's totals
// with compare-and-set, so several nodes add up.
func (b *Broker) flushCounters(ctx context.Context, q *qstate) error {
	d := counters{q.published.Swap(0), q.processed.Swap(0), q.failed.Swap(0), q.deadLettered.Swap(0)}
	if d == (counters{}) {
		return nil
	}
	var err error
	for range 5 {
		var ct counters
		var rev uint64
		ct, rev, err = b.loadCounters(ctx, q.n.queue)
		if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			break
		}
		ct.Published += d.Published
		ct.Processed += d.Processed
		ct.Failed += d.Failed
		ct.DeadLettered += d.DeadLettered
		val, _ := json.Marshal(ct)
		if rev == 0 {
			_, err = b.kv.Create(ctx, statsKeyPrefix+q.n.queue, val)
		} else {
			_, err = b.kv.Update(ctx, statsKeyPrefix+q.n.queue, val, rev)
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
func (b *Broker) consumerSeen(q *qstate, name string) {
	if name == "" {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.seen == nil {
		b.seen = map[string]time.Time{}
	}
	key := q.n.queue + "\x00" + name
	if _, ok := b.seen[key]; !ok {
		if len(b.seen) >= 10000 {
			return
		}
		q.consumersTotal.Add(1)
	}
	b.seen[key] = time.Now()
}

// recentReceivers counts the named HTTP receivers of queue seen in the
// last 5 minutes.
func (b *Broker) recentReceivers(queue string) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	var n int64
	prefix := queue + "\x00"
	for k, t := range b.seen {
		if strings.HasPrefix(k, prefix) && time.Since(t) <= 5*time.Minute {
			n++
		}
	}
	return n
}

func sortStrings(s []string) { slices.Sort(s) }

func (q *qstate) consumerInfo(ctx context.Context, p int) (*jetstream.ConsumerInfo, error) {
	cons, err := q.stream.Consumer(ctx, consumerName(p)) // fetches the info
	if err != nil {
		return nil, err
	}
	return cons.CachedInfo(), nil
}
