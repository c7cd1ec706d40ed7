package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/plexushq/plexus/bench/internal/benchutil"
)

// rabbit is RabbitMQ from Debian: a durable queue, persistent messages,
// publisher confirms awaited per batch, manual acks, prefetch 64.
type rabbit struct {
	url  string
	conn *amqp.Connection
}

const rabbitQueue = "bench"

// startRabbit runs epmd and rabbitmq-server on loopback ports with their
// state in the temp dir, and waits until AMQP answers.
func startRabbit(ctx context.Context, ps *benchutil.Procs) (*rabbit, error) {
	dir := ps.Path("rabbitmq")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var ports [3]int
	for i := range ports {
		p, err := benchutil.FreePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	amqpPort, distPort, epmdPort := ports[0], ports[1], ports[2]
	conf, err := ps.WriteFile("rabbitmq/rabbitmq.conf", fmt.Sprintf(
		"listeners.tcp.default = 127.0.0.1:%d\nloopback_users.guest = true\nlog.console = true\nlog.console.level = warning\nlog.file = false\n", amqpPort))
	if err != nil {
		return nil, err
	}
	plugins, err := ps.WriteFile("rabbitmq/enabled_plugins", "[].\n")
	if err != nil {
		return nil, err
	}
	env := []string{
		"HOME=" + dir,
		"ERL_EPMD_PORT=" + strconv.Itoa(epmdPort),
		"ERL_EPMD_ADDRESS=127.0.0.1",
		"RABBITMQ_NODENAME=bench@localhost",
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT=" + strconv.Itoa(amqpPort),
		"RABBITMQ_DIST_PORT=" + strconv.Itoa(distPort),
		"RABBITMQ_CONFIG_FILE=" + conf,
		"RABBITMQ_ENABLED_PLUGINS_FILE=" + plugins,
		"RABBITMQ_MNESIA_BASE=" + dir + "/mnesia",
		"RABBITMQ_LOG_BASE=" + dir + "/log",
		"RABBITMQ_PID_FILE=" + dir + "/rabbit.pid",
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
	}
	// Our own epmd in the foreground, so that it is our child and stops with us.
	epmd, err := ps.Start("epmd", "", env, "epmd", "-port", strconv.Itoa(epmdPort), "-address", "127.0.0.1")
	if err != nil {
		return nil, err
	}
	if err := benchutil.WaitTCP(ctx, fmt.Sprintf("127.0.0.1:%d", epmdPort), epmd, 10*time.Second); err != nil {
		return nil, err
	}
	pr, err := ps.Start("rabbitmq", "", env, "/usr/lib/rabbitmq/bin/rabbitmq-server")
	if err != nil {
		return nil, err
	}
	if err := benchutil.WaitTCP(ctx, fmt.Sprintf("127.0.0.1:%d", amqpPort), pr, 90*time.Second); err != nil {
		return nil, err
	}
	r := &rabbit{url: fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", amqpPort)}
	deadline := time.Now().Add(30 * time.Second)
	for {
		r.conn, err = amqp.Dial(r.url)
		if err == nil {
			return r, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("rabbitmq: %w: %s", err, pr.Tail(2000))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (r *rabbit) Name() string { return "RabbitMQ" }

func (r *rabbit) Reset(ctx context.Context) error {
	ch, err := r.conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	if _, err := ch.QueueDelete(rabbitQueue, false, false, false); err != nil {
		return err
	}
	_, err = ch.QueueDeclare(rabbitQueue, true, false, false, false, nil)
	return err
}

type rabbitProducer struct {
	conn *amqp.Connection
	ch   *amqp.Channel
}

func (r *rabbit) NewProducer(ctx context.Context) (producer, error) {
	conn, err := amqp.Dial(r.url)
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		conn.Close()
		return nil, err
	}
	return &rabbitProducer{conn: conn, ch: ch}, nil
}

func (p *rabbitProducer) PublishBatch(ctx context.Context, payloads [][]byte) error {
	dcs := make([]*amqp.DeferredConfirmation, len(payloads))
	for i, m := range payloads {
		dc, err := p.ch.PublishWithDeferredConfirmWithContext(ctx, "", rabbitQueue, true, false, amqp.Publishing{
			DeliveryMode: amqp.Persistent, ContentType: "application/octet-stream", Body: m,
		})
		if err != nil {
			return err
		}
		dcs[i] = dc
	}
	for _, dc := range dcs {
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("rabbitmq: publish nacked")
		}
	}
	return nil
}

func (p *rabbitProducer) Close() { p.conn.Close() }

func (r *rabbit) Consume(ctx context.Context, n int, handle func([]byte)) (func(), error) {
	var wg sync.WaitGroup
	var conns []*amqp.Connection
	for i := range n {
		conn, err := amqp.Dial(r.url)
		if err != nil {
			return nil, err
		}
		conns = append(conns, conn)
		ch, err := conn.Channel()
		if err != nil {
			return nil, err
		}
		if err := ch.Qos(64, 0, false); err != nil {
			return nil, err
		}
		dl, err := ch.ConsumeWithContext(ctx, rabbitQueue, fmt.Sprintf("c%d", i), false, false, false, false, nil)
		if err != nil {
			return nil, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range dl {
				handle(d.Body)
				_ = d.Ack(false)
			}
		}()
	}
	return func() {
		<-ctx.Done()
		for _, c := range conns {
			c.Close()
		}
		wg.Wait()
	}, nil
}

func (r *rabbit) Close() {
	if r.conn != nil {
		r.conn.Close()
	}
}

var _ broker = (*rabbit)(nil)
