package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nuid"
	"github.com/spf13/cobra"

	"github.com/plexushq/plexus/queue"
)

// newQueueCmd is `plexus queue create|ls|stats|publish|receive|ack|nack|extend|dead-letters|redrive|delete`.
func newQueueCmd() *cobra.Command {
	g := &globals{}
	cmd := &cobra.Command{Use: "queue", Short: "Create, inspect, publish to and receive from durable queues"}
	g.register(cmd)
	cmd.AddCommand(newQueueCreateCmd(g), newQueueLsCmd(g), newQueueStatsCmd(g), newQueuePublishCmd(g),
		newQueueReceiveCmd(g), newQueueAckCmd(g), newQueueNackCmd(g), newQueueExtendCmd(g),
		newQueueDeadLettersCmd(g), newQueueRedriveCmd(g), newQueueDeleteCmd(g))
	return cmd
}

func queuePath(name string, rest ...string) string {
	return "/v1/queues/" + url.PathEscape(name) + strings.Join(rest, "")
}

func newQueueCreateCmd(g *globals) *cobra.Command {
	var (
		maxSize, attempts                  int
		overflow, backoff, dlq             string
		retryDelay, ttl, visibilityTimeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a queue, or change its options (unset options take their defaults)",
		Args:  cobra.ExactArgs(1),
		RunE: g.run(func(cmd *cobra.Command, args []string) error {
			body := map[string]any{}
			fl := cmd.Flags()
			set := func(flag, key string, v any) {
				if fl.Changed(flag) {
					body[key] = v
				}
			}
			set("max-size", "maxSize", maxSize)
			set("overflow", "overflow", overflow)
			set("retry-attempts", "retryAttempts", attempts)
			set("retry-delay", "retryDelay", retryDelay.String())
			set("retry-backoff", "retryBackoff", backoff)
			set("ttl", "ttl", ttl.String())
			set("dead-letter-queue", "deadLetterQueue", dlq)
			set("visibility-timeout", "visibilityTimeout", visibilityTimeout.String())
			var info queue.Info
			if err := g.do(cmd.Context(), "PUT", queuePath(args[0]), body, &info); err != nil {
				return err
			}
			return printQueues(g, &info, []*queue.Info{&info})
		}),
	}
	fl := cmd.Flags()
	fl.IntVar(&maxSize, "max-size", queue.DefaultMaxSize, "messages held at most")
	fl.StringVar(&overflow, "overflow", queue.OverflowDropOldest, "when full: drop-oldest (dead-letters it) or reject")
	fl.IntVar(&attempts, "retry-attempts", queue.DefaultRetryAttempts, "deliveries before dead-lettering")
	fl.DurationVar(&retryDelay, "retry-delay", queue.DefaultRetryDelay, "wait before a retry (0s: at once)")
	fl.StringVar(&backoff, "retry-backoff", queue.BackoffFixed, "fixed or exponential (with jitter)")
	fl.DurationVar(&ttl, "ttl", queue.DefaultTTL, "age after which a message is dead-lettered as expired")
	fl.StringVar(&dlq, "dead-letter-queue", "", "dead-letter queue (default NAME.dlq)")
	fl.DurationVar(&visibilityTimeout, "visibility-timeout", queue.DefaultVisibilityTimeout, "time a received message stays invisible")
	return cmd
}

func printQueues(g *globals, v any, infos []*queue.Info) error {
	rows := make([][]string, 0, len(infos))
	for _, q := range infos {
		rows = append(rows, []string{q.Name, strconv.FormatInt(q.QueueSize, 10), strconv.FormatInt(q.Delayed, 10),
			strconv.FormatInt(q.InFlight, 10), strconv.FormatInt(q.DeadLetterQueueSize, 10),
			strconv.FormatInt(q.ProcessedMessages, 10), strconv.FormatInt(q.ErrorMessages, 10),
			fmt.Sprintf("%d/%d", q.ActiveConsumers, q.TotalConsumers)})
	}
	return g.print(v, []string{"NAME", "SIZE", "DELAYED", "IN-FLIGHT", "DEAD", "PROCESSED", "ERRORS", "CONSUMERS"}, rows)
}

func newQueueLsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "ls", Short: "List queues with their statistics", Args: cobra.NoArgs,
		RunE: g.run(func(cmd *cobra.Command, _ []string) error {
			var infos []*queue.Info
			if err := g.do(cmd.Context(), "GET", "/v1/queues", nil, &infos); err != nil {
				return err
			}
			return printQueues(g, infos, infos)
		}),
	}
}

func newQueueStatsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "stats NAME", Short: "Show a queue's options and statistics", Args: cobra.ExactArgs(1),
		RunE: g.run(func(cmd *cobra.Command, args []string) error {
			var info queue.Info
			if err := g.do(cmd.Context(), "GET", queuePath(args[0]), nil, &info); err != nil {
				return err
			}
			return printQueues(g, &info, []*queue.Info{&info})
		}),
	}
}

// errNotJSON is the one answer of `events append` and `queue publish` to
// a data argument that is not JSON.
var errNotJSON = errors.New("data is not valid JSON (use --string to send text)")

// dataArg reads the data argument of `events append` and `queue publish`
// by one rule: JSON as is, or, with --string, the text as a JSON string;
// "-" reads standard input.
func dataArg(arg string, asString bool) (json.RawMessage, error) {
	b := []byte(arg)
	if arg == "-" {
		var err error
		if b, err = readFileOrStdin("-"); err != nil {
			return nil, err
		}
	}
	if asString {
		return json.Marshal(string(b))
	}
	if !json.Valid(b) {
		return nil, errNotJSON
	}
	return b, nil
}

func newQueuePublishCmd(g *globals) *cobra.Command {
	var (
		priority int
		delay    time.Duration
		id       string
		headers  []string
		asString bool
	)
	cmd := &cobra.Command{
		Use:   "publish NAME PAYLOAD",
		Short: "Publish a message (PAYLOAD is JSON, or text with --string; - reads stdin)",
		Example: `  plexus queue publish orders '{"orderId":42}' --priority 5
  plexus queue publish mail 'hello there' --string`,
		Args: cobra.ExactArgs(2),
		RunE: g.run(func(cmd *cobra.Command, args []string) error {
			payload, err := dataArg(args[1], asString)
			if err != nil {
				return err
			}
			body := map[string]any{"payload": payload, "priority": priority}
			if delay > 0 {
				body["delay"] = delay.String()
			}
			if id == "" {
				// An id of its own makes the retries below idempotent: the
				// engine stores a repeated publish once.
				id = "cli-" + nuid.Next()
			}
			body["id"] = id
			if len(headers) > 0 {
				h := map[string]string{}
				for _, kv := range headers {
					k, v, ok := strings.Cut(kv, "=")
					if !ok {
						return fmt.Errorf("--header %q: want NAME=VALUE", kv)
					}
					h[k] = v
				}
				body["headers"] = h
			}
			var out struct {
				ID string `json:"id"`
			}
			if err := g.doIdempotent(cmd.Context(), "POST", queuePath(args[0], "/messages"), body, &out); err != nil {
				return err
			}
			return g.print(out, []string{"ID"}, [][]string{{out.ID}})
		}),
	}
	fl := cmd.Flags()
	fl.IntVar(&priority, "priority", 0, "0 to 9, higher first")
	fl.DurationVar(&delay, "delay", 0, "deliver no earlier than this from now")
	fl.StringVar(&id, "id", "", "message id (idempotent publish; default generated, so the CLI's own retries store the message once)")
	fl.StringArrayVar(&headers, "header", nil, "NAME=VALUE header (repeatable)")
	fl.BoolVar(&asString, "string", false, "send PAYLOAD as a JSON string (text)")
	return cmd
}

type wireMsgs struct {
	Messages []struct {
		ID               string          `json:"id"`
		Payload          json.RawMessage `json:"payload"`
		Priority         int             `json:"priority"`
		Attempts         int             `json:"attempts"`
		Receipt          string          `json:"receipt,omitempty"`
		DeadLetterReason string          `json:"deadLetterReason,omitempty"`
		LastError        string          `json:"lastError,omitempty"`
	} `json:"messages"`
}

func newQueueReceiveCmd(g *globals) *cobra.Command {
	var (
		max  int
		wait time.Duration
		ack  bool
	)
	cmd := &cobra.Command{
		Use:   "receive NAME",
		Short: "Receive messages (long poll); settle each with queue ack|nack RECEIPT, or --ack at once",
		Args:  cobra.ExactArgs(1),
		RunE: g.run(func(cmd *cobra.Command, args []string) error {
			var out wireMsgs
			body := map[string]any{"max": max, "wait": wait.String()}
			if err := g.do(cmd.Context(), "POST", queuePath(args[0], "/receive"), body, &out); err != nil {
				return err
			}
			if ack && len(out.Messages) > 0 {
				rs := make([]string, len(out.Messages))
				for i, m := range out.Messages {
					rs[i] = m.Receipt
				}
				if err := g.do(cmd.Context(), "POST", queuePath(args[0], "/ack"), map[string]any{"receipts": rs}, nil); err != nil {
					return err
				}
			}
			rows := make([][]string, 0, len(out.Messages))
			for _, m := range out.Messages {
				rows = append(rows, []string{m.ID, strconv.Itoa(m.Priority), strconv.Itoa(m.Attempts), string(m.Payload), m.Receipt})
			}
			return g.print(out, []string{"ID", "PRIORITY", "ATTEMPTS", "PAYLOAD", "RECEIPT"}, rows)
		}),
	}
	fl := cmd.Flags()
	fl.IntVar(&max, "max", 1, "messages at most (1 to 100)")
	fl.DurationVar(&wait, "wait", 5*time.Second, "wait this long for a message")
	fl.BoolVar(&ack, "ack", false, "acknowledge the received messages")
	return cmd
}

func newQueueDeadLettersCmd(g *globals) *cobra.Command {
	var (
		limit int
		purge bool
	)
	cmd := &cobra.Command{
		Use:   "dead-letters NAME",
		Short: "List a queue's dead letters (--purge deletes them)",
		Args:  cobra.ExactArgs(1),
		RunE: g.run(func(cmd *cobra.Command, args []string) error {
			if purge {
				return g.do(cmd.Context(), "DELETE", queuePath(args[0], "/dead-letters"), nil, nil)
			}
			var out wireMsgs
			if err := g.do(cmd.Context(), "GET", queuePath(args[0], "/dead-letters?limit="+strconv.Itoa(limit)), nil, &out); err != nil {
				return err
			}
			rows := make([][]string, 0, len(out.Messages))
			for _, m := range out.Messages {
				rows = append(rows, []string{m.ID, m.DeadLetterReason, strconv.Itoa(m.Attempts), m.LastError, string(m.Payload)})
			}
			return g.print(out, []string{"ID", "REASON", "ATTEMPTS", "LAST-ERROR", "PAYLOAD"}, rows)
		}),
	}
	cmd.Flags().IntVar(&limit, "limit", 100, "dead letters at most (1 to 1000)")
	cmd.Flags().BoolVar(&purge, "purge", false, "delete the queue's dead letters")
	return cmd
}

func newQueueRedriveCmd(g *globals) *cobra.Command {
	var ids []string
	cmd := &cobra.Command{
		Use:   "redrive NAME",
		Short: "Move dead letters back into their queue (all, or --id ...)",
		Args:  cobra.ExactArgs(1),
		RunE: g.run(func(cmd *cobra.Command, args []string) error {
			body := map[string]any{}
			if len(ids) > 0 {
				body["ids"] = ids
			}
			var out struct {
				Redriven int `json:"redriven"`
			}
			if err := g.do(cmd.Context(), "POST", queuePath(args[0], "/dead-letters/redrive"), body, &out); err != nil {
				return err
			}
			return g.print(out, []string{"REDRIVEN"}, [][]string{{strconv.Itoa(out.Redriven)}})
		}),
	}
	cmd.Flags().StringSliceVar(&ids, "id", nil, "dead letter ids to redrive (default all)")
	return cmd
}

func newQueueDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "delete NAME", Short: "Delete a queue and its messages", Args: cobra.ExactArgs(1),
		RunE: g.run(func(cmd *cobra.Command, args []string) error {
			return g.do(cmd.Context(), "DELETE", queuePath(args[0]), nil, nil)
		}),
	}
}

func newQueueAckCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "ack NAME RECEIPT...",
		Short: "Acknowledge received messages: done, remove them",
		Args:  cobra.MinimumNArgs(2),
		RunE: g.run(func(cmd *cobra.Command, args []string) error {
			var out struct {
				Acked int `json:"acked"`
			}
			if err := g.do(cmd.Context(), "POST", queuePath(args[0], "/ack"), map[string]any{"receipts": args[1:]}, &out); err != nil {
				return err
			}
			return g.print(out, []string{"ACKED"}, [][]string{{strconv.Itoa(out.Acked)}})
		}),
	}
}

func newQueueNackCmd(g *globals) *cobra.Command {
	var (
		reason string
		delay  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "nack NAME RECEIPT",
		Short: "Give a received message back as failed: retried after the retry delay, or dead-lettered after the last attempt",
		Args:  cobra.ExactArgs(2),
		RunE: g.run(func(cmd *cobra.Command, args []string) error {
			body := map[string]any{"receipt": args[1]}
			if reason != "" {
				body["error"] = reason
			}
			if delay > 0 {
				body["delay"] = delay.String()
			}
			var out struct {
				Nacked int `json:"nacked"`
			}
			if err := g.do(cmd.Context(), "POST", queuePath(args[0], "/nack"), body, &out); err != nil {
				return err
			}
			return g.print(out, []string{"NACKED"}, [][]string{{strconv.Itoa(out.Nacked)}})
		}),
	}
	cmd.Flags().StringVar(&reason, "error", "", "why it failed (kept as the message's last error)")
	cmd.Flags().DurationVar(&delay, "delay", 0, "retry after this instead of the queue's retry delay")
	return cmd
}

func newQueueExtendCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "extend NAME RECEIPT...",
		Short: "Keep received messages invisible for another visibility timeout; prints their new receipts",
		Args:  cobra.MinimumNArgs(2),
		RunE: g.run(func(cmd *cobra.Command, args []string) error {
			var out struct {
				Receipts []string `json:"receipts"`
			}
			if err := g.do(cmd.Context(), "POST", queuePath(args[0], "/extend"), map[string]any{"receipts": args[1:]}, &out); err != nil {
				return err
			}
			rows := make([][]string, len(out.Receipts))
			for i, r := range out.Receipts {
				rows[i] = []string{r}
			}
			return g.print(out, []string{"RECEIPT"}, rows)
		}),
	}
}
