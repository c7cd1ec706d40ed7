package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/retry"
)

// rawJS is the limit: plain JetStream publishes on the same embedded
// engine with the same concurrency control Plexus uses
// (Nats-Expected-Last-Subject-Sequence) and, for batches, the engine's
// atomic batch publish; reads with an ordered consumer; catch-up with a
// durable consumer acking every event. The writer remembers each stream's
// last sequence itself, as Plexus's version cache does.
type rawJS struct {
	eng *engine.Engine
	js  jetstream.JetStream
	nc  *nats.Conn
	mu  sync.Mutex
	seq map[string]uint64
	// pipelined publishes a batch's messages without the atomic batch
	// protocol (not all-or-none): an upper bound that shows what the
	// engine's atomic batch staging costs. It runs only batch phases.
	pipelined bool
	label     string // the engine, when several run
}

const rawStream = "BENCH_RAW_EVENTS"

func newRawJS(ctx context.Context, eng *engine.Engine) (*rawJS, error) {
	_, err := eng.EnsureStream(ctx, jetstream.StreamConfig{
		Name: rawStream, Subjects: []string{"bench.ev.>"}, Storage: jetstream.FileStorage,
		MaxMsgs: -1, MaxBytes: -1, AllowDirect: true, AllowAtomicPublish: true,
	})
	if err != nil {
		return nil, err
	}
	return &rawJS{eng: eng, js: eng.JetStream(), nc: eng.Conn(), seq: map[string]uint64{}}, nil
}

func (r *rawJS) Name() string {
	if r.pipelined {
		return withLabel("raw JetStream, batch not atomic", r.label)
	}
	return withLabel("raw JetStream", r.label)
}

// appendPipelined sends a batch as plain publishes (the first with the
// expected last sequence) and waits for every acknowledgement.
func (r *rawJS) appendPipelined(ctx context.Context, subj string, last uint64, expected int64, data [][]byte) error {
	futs := make([]jetstream.PubAckFuture, len(data))
	for i, d := range data {
		h := nats.Header{"Event-Type": {"UserCreated"}, "Event-Version": {strconv.FormatInt(expected+int64(i)+1, 10)}}
		if i == 0 {
			h[jetstream.ExpectedLastSubjSeqHeader] = []string{strconv.FormatUint(last, 10)}
		}
		f, err := r.js.PublishMsgAsync(&nats.Msg{Subject: subj, Header: h, Data: d})
		if err != nil {
			return err
		}
		futs[i] = f
	}
	var lastSeq uint64
	for _, f := range futs {
		select {
		case a := <-f.Ok():
			lastSeq = a.Sequence
		case err := <-f.Err():
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	r.seq[subj] = lastSeq
	r.mu.Unlock()
	return nil
}

type rawAck struct {
	Seq   uint64 `json:"seq"`
	Error *struct {
		Code        jetstream.ErrorCode `json:"err_code"`
		Description string              `json:"description"`
	} `json:"error"`
}

// rawInProcessRetries bounds the retries of an append a clustered stream
// leader refused with "wrong last sequence" without a sequence (10164):
// the writer's previous append to the subject was acknowledged but is
// still in process there; nothing was stored. Plexus's store retries the
// same way.
const rawInProcessRetries = 12

// publish sends one append (an atomic batch for several events) and
// reads its acknowledgement.
func (r *rawJS) publish(ctx context.Context, subj string, last uint64, expected int64, data [][]byte) (rawAck, error) {
	batch := ""
	if len(data) > 1 {
		batch = nuid.Next()
	}
	var resp *nats.Msg
	for i, d := range data {
		h := nats.Header{"Event-Type": {"UserCreated"}, "Event-Version": {strconv.FormatInt(expected+int64(i)+1, 10)}}
		if i == 0 {
			h[jetstream.ExpectedLastSubjSeqHeader] = []string{strconv.FormatUint(last, 10)}
		}
		if batch != "" {
			h["Nats-Batch-Id"] = []string{batch}
			h["Nats-Batch-Sequence"] = []string{strconv.Itoa(i + 1)}
			if i == len(data)-1 {
				h["Nats-Batch-Commit"] = []string{"1"}
			}
		}
		m := &nats.Msg{Subject: subj, Header: h, Data: d}
		var err error
		if i < len(data)-1 {
			err = r.nc.PublishMsg(m)
		} else {
			resp, err = r.nc.RequestMsgWithContext(ctx, m)
		}
		if err != nil {
			return rawAck{}, err
		}
	}
	var ack rawAck
	err := json.Unmarshal(resp.Data, &ack)
	return ack, err
}

func (r *rawJS) Append(ctx context.Context, stream string, expected int64, data [][]byte) error {
	subj := "bench.ev." + stream
	r.mu.Lock()
	last := r.seq[subj]
	r.mu.Unlock()
	if r.pipelined {
		if len(data) == 1 {
			return errSkip
		}
		return r.appendPipelined(ctx, subj, last, expected, data)
	}
	var ack rawAck
	for n := 0; ; n++ {
		var err error
		if ack, err = r.publish(ctx, subj, last, expected, data); err != nil {
			return err
		}
		if ack.Error == nil {
			break
		}
		if ack.Error.Code != jetstream.JSErrCodeStreamWrongLastSequenceConstant || n == rawInProcessRetries {
			return fmt.Errorf("raw publish: %s", ack.Error.Description)
		}
		if err := retry.Sleep(ctx, time.Millisecond<<min(n, 5)); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.seq[subj] = ack.Seq
	r.mu.Unlock()
	return nil
}

type rawEvent struct {
	Stream  string
	Version int64
	Type    string
	Data    json.RawMessage
	Seq     uint64
	Time    time.Time
}

func decodeRaw(m jetstream.Msg) (rawEvent, error) {
	md, err := m.Metadata()
	if err != nil {
		return rawEvent{}, err
	}
	v, _ := strconv.ParseInt(m.Headers().Get("Event-Version"), 10, 64)
	return rawEvent{Stream: m.Subject()[len("bench.ev."):], Version: v, Type: m.Headers().Get("Event-Type"),
		Data: m.Data(), Seq: md.Sequence.Stream, Time: md.Timestamp}, nil
}

func (r *rawJS) ReadAll(ctx context.Context) (int, error) {
	if r.pipelined {
		return 0, errSkip
	}
	info, err := r.js.Stream(ctx, rawStream)
	if err != nil {
		return 0, err
	}
	total := int(info.CachedInfo().State.Msgs)
	cons, err := r.js.OrderedConsumer(ctx, rawStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return 0, err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1000))
	if err != nil {
		return 0, err
	}
	defer it.Stop()
	n := 0
	for n < total {
		m, err := it.Next()
		if err != nil {
			return n, err
		}
		if _, err := decodeRaw(m); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func (r *rawJS) CatchUp(ctx context.Context, group string, want int) error {
	if r.pipelined {
		return errSkip
	}
	cons, err := r.js.CreateOrUpdateConsumer(ctx, rawStream, jetstream.ConsumerConfig{
		Durable: group, AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxAckPending: 1000, AckWait: time.Minute,
	})
	if err != nil {
		return err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(256))
	if err != nil {
		return err
	}
	defer it.Stop()
	for n := 0; n < want; n++ {
		m, err := it.Next()
		if err != nil {
			return err
		}
		if _, err := decodeRaw(m); err != nil {
			return err
		}
		if err := m.Ack(); err != nil {
			return err
		}
	}
	return nil
}

func (r *rawJS) Close() {}

// rawCounter counts the raw stream's events (the atomic variant owns it).
type rawCounter struct{ *rawJS }

func (r rawCounter) Count(ctx context.Context) (int, error) {
	st, err := r.js.Stream(ctx, rawStream)
	if err != nil {
		return 0, err
	}
	return int(st.CachedInfo().State.Msgs), nil
}

var _ store = (*rawJS)(nil)
