package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/plexushq/plexus/engine"
)

// puller speaks JetStream's pull protocol on one long-lived inbox
// subscription, so that a fetch costs one request and no goroutine,
// subscription or timer of its own (nats.go's Fetch makes all three).
// A puller serves one fetch at a time; the client keeps a pool.
type puller struct {
	nc    *nats.Conn
	inbox string
	sub   *nats.Subscription
	ch    chan *nats.Msg
	req   uint64
	buf   []byte
}

func newPuller(nc *nats.Conn) (*puller, error) {
	p := &puller{nc: nc, inbox: nc.NewInbox(), ch: make(chan *nats.Msg, 1024)}
	var err error
	if p.sub, err = nc.ChanSubscribe(p.inbox+".*", p.ch); err != nil {
		return nil, err
	}
	_ = p.sub.SetPendingLimits(-1, -1)
	return p, nil
}

func (p *puller) close() { _ = p.sub.Unsubscribe() }

// errPullFailed wraps a status the engine answered a pull with.
var errPullFailed = errors.New("pull failed")

// errStopped: the wait was ended by the stop channel.
var errStopped = errors.New("stopped")

// fetchNoWait takes up to batch messages that are available now. Messages
// arrive on the inbox with their own subject; status answers (404 no
// messages) carry the request's reply subject.
func (p *puller) fetchNoWait(ctx context.Context, stream, consumer string, batch int, out []*nats.Msg) ([]*nats.Msg, error) {
	return p.fetch(ctx, stream, consumer, batch, 0, nil, out)
}

// fetch is fetchNoWait that, when nothing is available, waits up to
// expires for the first messages (the engine's one-shot no_wait+expires
// pull). A puller whose fetch ended with an error (or errStopped) may still
// receive answers and must not be reused.
func (p *puller) fetch(ctx context.Context, stream, consumer string, batch int, expires time.Duration, stop <-chan struct{}, out []*nats.Msg) ([]*nats.Msg, error) {
	p.req++
	reply := p.inbox + "." + strconv.FormatUint(p.req, 36)
	if expires > 0 {
		p.buf = fmt.Appendf(p.buf[:0], `{"batch":%d,"no_wait":true,"expires":%d}`, batch, expires.Nanoseconds())
	} else {
		p.buf = fmt.Appendf(p.buf[:0], `{"batch":%d,"no_wait":true}`, batch)
	}
	if err := p.nc.PublishRequest("$JS.API.CONSUMER.MSG.NEXT."+stream+"."+consumer, reply, p.buf); err != nil {
		return out, err
	}
	timer := time.NewTimer(expires + 10*time.Second)
	defer timer.Stop()
	for got := 0; got < batch; {
		select {
		case m := <-p.ch:
			if len(m.Data) == 0 && m.Header != nil && m.Header.Get("Status") != "" {
				if m.Subject != reply {
					continue // the end of an earlier request
				}
				switch m.Header.Get("Status") {
				case "404", "408":
					return out, nil // no (more) messages
				case "503", "409":
					// No responders (the consumer has no leader) or a leadership
					// change: the engine fails over; retry shortly.
					return out, fmt.Errorf("%w: %w: %s %s", engine.ErrUnavailable, errPullFailed,
						m.Header.Get("Status"), m.Header.Get("Description"))
				default:
					return out, fmt.Errorf("%w: %s %s", errPullFailed, m.Header.Get("Status"), m.Header.Get("Description"))
				}
			}
			if !strings.HasPrefix(m.Reply, "$JS.ACK.") {
				continue
			}
			out = append(out, m)
			got++
		case <-timer.C:
			return out, fmt.Errorf("%w: %w: no answer from the engine", engine.ErrUnavailable, errPullFailed)
		case <-stop:
			return out, errStopped
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
	return out, nil
}

// pullers is a bounded free list of pullers.
type pullers struct {
	nc   *nats.Conn
	mu   sync.Mutex
	free []*puller
}

func (ps *pullers) get() (*puller, error) {
	ps.mu.Lock()
	if n := len(ps.free); n > 0 {
		p := ps.free[n-1]
		ps.free = ps.free[:n-1]
		ps.mu.Unlock()
		return p, nil
	}
	ps.mu.Unlock()
	return newPuller(ps.nc)
}

// put returns a puller; a puller whose fetch failed is dropped, since a
// late answer could still arrive on it.
func (ps *pullers) put(p *puller, healthy bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if !healthy || len(ps.free) >= 64 {
		p.close()
		return
	}
	ps.free = append(ps.free, p)
}

func (ps *pullers) closeAll() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, p := range ps.free {
		p.close()
	}
	ps.free = nil
}

// meta is what an ack subject says about a delivery.
type meta struct {
	stream, consumer string
	delivered        int
	seq              uint64
	ts               time.Time
}

// parseAck reads $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>,
// or the newer form with domain and account hash before the stream,
// without allocating.
func parseAck(reply string) (meta, bool) {
	var tok [12]string
	n := 0
	for start, i := 0, 0; i <= len(reply); i++ {
		if i == len(reply) || reply[i] == '.' {
			if n == len(tok) {
				return meta{}, false
			}
			tok[n] = reply[start:i]
			n++
			start = i + 1
		}
	}
	if n < 9 || tok[0] != "$JS" || tok[1] != "ACK" {
		return meta{}, false
	}
	t := tok[2:n]
	if n >= 11 {
		t = tok[4:n]
	}
	d, err1 := strconv.Atoi(t[2])
	seq, err2 := strconv.ParseUint(t[3], 10, 64)
	ns, err3 := strconv.ParseInt(t[5], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return meta{}, false
	}
	return meta{stream: t[0], consumer: t[1], delivered: d, seq: seq, ts: time.Unix(0, ns)}, true
}
