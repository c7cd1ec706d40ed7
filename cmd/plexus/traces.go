package main

import (
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/plexushq/plexus/telemetry"
)

// newTracesCmd is `plexus traces ls | show ID`.
func newTracesCmd() *cobra.Command {
	g := &globals{}
	cmd := &cobra.Command{
		Use:   "traces",
		Short: "List recent traces and show one as a waterfall",
	}
	g.register(cmd)
	cmd.AddCommand(newTracesLsCmd(g), newTracesShowCmd(g))
	return cmd
}

func newTracesLsCmd(g *globals) *cobra.Command {
	var (
		service  string
		minDur   time.Duration
		errsOnly bool
		limit    int
	)
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List recent traces, newest first",
		Args:  cobra.NoArgs,
		RunE: g.run(func(cmd *cobra.Command, _ []string) error {
			q := url.Values{"limit": {strconv.Itoa(limit)}}
			if service != "" {
				q.Set("service", service)
			}
			if minDur > 0 {
				q.Set("minDuration", minDur.String())
			}
			if errsOnly {
				q.Set("errors", "true")
			}
			var list []telemetry.TraceSummary
			if err := g.do(cmd.Context(), "GET", "/v1/traces?"+q.Encode(), nil, &list); err != nil {
				return err
			}
			rows := make([][]string, 0, len(list))
			for _, t := range list {
				rows = append(rows, []string{t.TraceID, t.RootService, t.RootOperation,
					t.Start.Local().Format("15:04:05.000"), t.Duration.String(),
					strconv.Itoa(t.Spans), strconv.Itoa(t.Errors)})
			}
			return g.print(list, []string{"TRACE", "SERVICE", "OPERATION", "START", "DURATION", "SPANS", "ERRORS"}, rows)
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&service, "service", "", "only traces that touch this service")
	fl.DurationVar(&minDur, "min-duration", 0, "only traces at least this long")
	fl.BoolVar(&errsOnly, "errors", false, "only traces with an error span")
	fl.IntVar(&limit, "limit", 20, "most traces listed (1-1000)")
	return cmd
}

func newTracesShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show TRACE_ID",
		Short: "Show one trace's spans as an indented waterfall",
		Args:  cobra.ExactArgs(1),
		RunE: g.run(func(cmd *cobra.Command, args []string) error {
			var t telemetry.TraceDetail
			if err := g.do(cmd.Context(), "GET", "/v1/traces/"+url.PathEscape(args[0]), nil, &t); err != nil {
				return err
			}
			return g.print(t, []string{"SPAN", "SERVICE", "OFFSET", "DURATION", "STATUS", "TIMELINE"}, waterfall(t))
		}),
	}
}

// waterfall renders spans depth-first under their parents with a 30-column bar.
func waterfall(t telemetry.TraceDetail) [][]string {
	children := map[string][]telemetry.Span{}
	ids := map[string]bool{}
	for _, s := range t.Spans {
		ids[s.SpanID] = true
	}
	var roots []telemetry.Span
	for _, s := range t.Spans {
		if s.ParentSpanID == "" || !ids[s.ParentSpanID] {
			roots = append(roots, s)
		} else {
			children[s.ParentSpanID] = append(children[s.ParentSpanID], s)
		}
	}
	t0, total := t.Summary.Start, t.Summary.Duration
	var rows [][]string
	var walk func(s telemetry.Span, depth int)
	walk = func(s telemetry.Span, depth int) {
		off := s.Start.Sub(t0)
		rows = append(rows, []string{strings.Repeat("  ", depth) + s.Name, s.Service, off.String(),
			s.Duration.String(), s.Status, bar(off, s.Duration, total, 30)})
		for _, c := range children[s.SpanID] {
			walk(c, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
	return rows
}

func bar(off, d, total time.Duration, width int) string {
	if total <= 0 {
		return strings.Repeat("█", width)
	}
	from := int(int64(width) * int64(off) / int64(total))
	n := max(1, int(int64(width)*int64(d)/int64(total)))
	from = min(max(from, 0), width-1)
	n = min(n, width-from)
	return strings.Repeat("·", from) + strings.Repeat("█", n) + strings.Repeat("·", width-from-n)
}
