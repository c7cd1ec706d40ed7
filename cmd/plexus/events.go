package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/plexushq/plexus/eventstore"
)

// newEventsCmd is `plexus events append | read | tail`.
func newEventsCmd() *cobra.Command {
	g := &globals{}
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Append events to a stream, read streams or all events, follow new events",
	}
	g.register(cmd)
	cmd.AddCommand(newEventsAppendCmd(g), newEventsReadCmd(g), newEventsTailCmd(g))
	return cmd
}

func eventsClient(g *globals) *eventstore.Client {
	return eventstore.NewClient(g.adminURL, g.bearer(), nil)
}

func newEventsAppendCmd(g *globals) *cobra.Command {
	var (
		expected int64
		e        eventstore.Event
		metadata string
		file     string
		asString bool
	)
	cmd := &cobra.Command{
		Use:   "append STREAM [TYPE [DATA_JSON]]",
		Short: "Append one event (TYPE and DATA: JSON, or text with --string) or a batch (--file, JSON list of events) atomically",
		Example: `  plexus events append user-42 user.created '{"username":"ann"}' --expected-version 0
  plexus events append user-42 user.note 'called back' --string
  plexus events append user-42 --file events.json   # [{"type":"user.login","data":{}}, …]`,
		Args: cobra.RangeArgs(1, 3),
		RunE: g.run(func(cmd *cobra.Command, args []string) error {
			var events []eventstore.Event
			switch {
			case file != "" && len(args) > 1:
				return errors.New("give TYPE and DATA or --file, not both")
			case file != "":
				b, err := readFileOrStdin(file)
				if err != nil {
					return err
				}
				if err := json.Unmarshal(b, &events); err != nil {
					return fmt.Errorf("--file: want a JSON list of events: %w", err)
				}
			case len(args) < 2:
				return errors.New("give TYPE (and DATA) or --file")
			default:
				e.Type = args[1]
				if len(args) == 3 {
					data, err := dataArg(args[2], asString)
					if err != nil {
						return err
					}
					e.Data = data
				}
				if metadata != "" {
					if !json.Valid([]byte(metadata)) {
						return errors.New("--metadata is not valid JSON (want an object such as '{\"by\":\"ann\"}')")
					}
					e.Metadata = json.RawMessage(metadata)
				}
				events = []eventstore.Event{e}
			}
			res, err := eventsClient(g).Append(cmd.Context(), args[0], expected, events...)
			var ce *eventstore.ConflictError
			if errors.As(err, &ce) {
				return exitError{code: 3, msg: fmt.Sprintf("conflict: %s is at version %d, not %d", args[0], ce.Current, expected)}
			}
			if err != nil {
				return err
			}
			return g.print(res, []string{"STREAM", "VERSION", "POSITION"},
				[][]string{{args[0], strconv.FormatInt(res.Version, 10), strconv.FormatUint(res.Position, 10)}})
		}),
	}
	fl := cmd.Flags()
	fl.Int64Var(&expected, "expected-version", eventstore.AnyVersion, "-1 any, 0 no stream yet, N exactly N (conflict exits 3)")
	fl.StringVar(&e.ID, "id", "", "event id (default generated; a given id deduplicates retries)")
	fl.StringVar(&e.CorrelationID, "correlation-id", "", "correlation id (default generated)")
	fl.StringVar(&e.CausationID, "causation-id", "", "causation id")
	fl.StringVar(&e.Source, "source", "cli", "source of the event")
	fl.StringVar(&metadata, "metadata", "", "metadata JSON object")
	fl.StringVarP(&file, "file", "f", "", "JSON list of events to append as one batch (- for stdin)")
	fl.BoolVar(&asString, "string", false, "send DATA as a JSON string (text)")
	return cmd
}

func readFileOrStdin(name string) ([]byte, error) {
	if name != "-" {
		return os.ReadFile(name)
	}
	b, err := io.ReadAll(io.LimitReader(os.Stdin, 16<<20+1))
	if err == nil && len(b) > 16<<20 {
		err = errors.New("stdin: more than 16 MiB")
	}
	return b, err
}

func newEventsReadCmd(g *globals) *cobra.Command {
	var (
		fromVersion  int64
		fromPosition uint64
		limit        int
		backward     bool
		types        []string
		category     string
		since        string
	)
	cmd := &cobra.Command{
		Use:   "read [STREAM]",
		Short: "Read a stream (by version) or all events in global order (by position, filtered)",
		Example: `  plexus events read user-42 --from-version 1
  plexus events read --types user.created,user.deleted --category user --from-position 100`,
		Args: cobra.MaximumNArgs(1),
		RunE: g.run(func(cmd *cobra.Command, args []string) error {
			c := eventsClient(g)
			if len(args) == 1 {
				var evs []eventstore.Envelope
				var err error
				if backward {
					evs, err = c.ReadStreamBackward(cmd.Context(), args[0], fromVersion, limit)
				} else {
					evs, err = c.ReadStream(cmd.Context(), args[0], fromVersion, limit)
				}
				if err != nil {
					return err
				}
				return printEvents(g, map[string]any{"events": evs}, evs)
			}
			q := eventstore.Query{FromPosition: fromPosition, Types: types, Category: category, Limit: limit}
			if since != "" {
				t, err := parseSince(since)
				if err != nil {
					return err
				}
				q.Since = t
			}
			page, err := c.ReadAll(cmd.Context(), q)
			if err != nil {
				return err
			}
			if err := printEvents(g, page, page.Events); err != nil {
				return err
			}
			if g.output == "table" {
				fmt.Fprintf(os.Stderr, "next position: %d\n", page.NextPosition)
			}
			return nil
		}),
	}
	fl := cmd.Flags()
	fl.Int64Var(&fromVersion, "from-version", 1, "first version of the stream (backward: the newest wanted; 0 = newest)")
	fl.BoolVar(&backward, "backward", false, "read the stream newest first")
	fl.Uint64Var(&fromPosition, "from-position", 0, "first global position (all events)")
	fl.StringSliceVar(&types, "types", nil, "only these event types")
	fl.StringVar(&category, "category", "", "only streams of this category (stream id before the first '-')")
	fl.StringVar(&since, "since", "", "only events stored since this RFC 3339 time or this long ago (e.g. 1h)")
	fl.IntVar(&limit, "limit", 100, "most events (1-1000)")
	return cmd
}

func parseSince(s string) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--since %q: want an RFC 3339 time or a duration", s)
	}
	return t, nil
}

func eventRow(e eventstore.Envelope) []string {
	data := string(e.Data)
	if len(data) > 60 {
		data = data[:57] + "..."
	}
	return []string{strconv.FormatUint(e.Position, 10), e.Stream, strconv.FormatInt(e.Version, 10), e.Type,
		e.Timestamp.Local().Format("2006-01-02 15:04:05.000"), data}
}

var eventHeader = []string{"POSITION", "STREAM", "VERSION", "TYPE", "TIME", "DATA"}

func printEvents(g *globals, v any, evs []eventstore.Envelope) error {
	rows := make([][]string, 0, len(evs))
	for _, e := range evs {
		rows = append(rows, eventRow(e))
	}
	return g.print(v, eventHeader, rows)
}

func newEventsTailCmd(g *globals) *cobra.Command {
	var (
		fromPosition uint64
		types        []string
		category     string
	)
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Follow events as they are appended (stored ones first from --from-position); Ctrl-C ends",
		Args:  cobra.NoArgs,
		RunE: g.run(func(cmd *cobra.Command, _ []string) error {
			q := eventstore.Query{FromPosition: fromPosition, Types: types, Category: category}
			q.OnlyNew = fromPosition == 0
			enc := json.NewEncoder(os.Stdout)
			if g.output == "table" {
				fmt.Println(strings.Join(eventHeader, "\t"))
			}
			return eventsClient(g).Tail(cmd.Context(), q, func(e eventstore.Envelope) error {
				if g.output == "json" {
					return enc.Encode(e)
				}
				_, err := fmt.Println(strings.Join(eventRow(e), "\t"))
				return err
			})
		}),
	}
	fl := cmd.Flags()
	fl.Uint64Var(&fromPosition, "from-position", 0, "start at this global position (default: only new events)")
	fl.StringSliceVar(&types, "types", nil, "only these event types")
	fl.StringVar(&category, "category", "", "only streams of this category")
	return cmd
}
