package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/plexushq/plexus/internal/httpx"
	"github.com/plexushq/plexus/server"
)

// globals are the flags every client command shares.
type globals struct {
	adminURL string
	token    string
	dataDir  string
	output   string
	timeout  time.Duration
}

// register adds the client flags to a command group (persistent, so every
// subcommand has them and PLEXUS_ADMIN_URL etc. apply).
func (g *globals) register(cmd *cobra.Command) {
	fl := cmd.PersistentFlags()
	fl.StringVar(&g.adminURL, "admin-url", "http://127.0.0.1:3100", "admin API of a Plexus node")
	fl.StringVar(&g.token, "admin-token", "", "admin token (default: read from <data-dir>/admin-token)")
	fl.StringVar(&g.dataDir, "data-dir", "./plexus-data", "where to find the admin token when --admin-token is not given")
	fl.StringVarP(&g.output, "output", "o", "table", "output format: table or json")
	fl.DurationVar(&g.timeout, "timeout", 30*time.Second, "bound on each request")
	_ = cmd.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"table", "json"}, cobra.ShellCompDirectiveNoFileComp
	})
}

func (g *globals) validate() error {
	if g.output != "table" && g.output != "json" {
		return fmt.Errorf("-o %q: want table or json", g.output)
	}
	return nil
}

func (g *globals) bearer() string {
	if g.token != "" {
		return g.token
	}
	if t, err := server.ReadToken(g.dataDir); err == nil {
		return t
	}
	return ""
}

// do sends one JSON request to the admin API and decodes a JSON answer into
// out (when not nil). A problem answer becomes an error naming its detail.
func (g *globals) do(ctx context.Context, method, path string, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	req, err := httpx.NewJSONRequest(ctx, method, strings.TrimRight(g.adminURL, "/")+path, g.bearer(), in)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var p httpx.Problem
		if json.Unmarshal(data, &p) != nil || p.Status == 0 {
			p = *httpx.NewProblem(resp.StatusCode, "", strings.TrimSpace(string(data)))
			p.Title = resp.Status
		}
		if p.RetryAfter == 0 {
			p.RetryAfter, _ = strconv.Atoi(resp.Header.Get("Retry-After"))
		}
		return answerError{&p}
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decoding answer: %w", err)
		}
	}
	return nil
}

// doIdempotent is do for a request that is safe to repeat (a publish with
// its message id): a 503 with a retry hint (the engine fails over) or a
// request that failed on the way is retried after the hint, a few times.
func (g *globals) doIdempotent(ctx context.Context, method, path string, in, out any) error {
	return httpx.Retry(ctx, httpx.RetryPolicy{}, func(ctx context.Context, _ int) error {
		return g.do(ctx, method, path, in, out)
	})
}

// answerError is an error answer of the admin API; it keeps the problem
// (status, retry hint) for retries and prints as "<status> <title>: <detail>".
type answerError struct{ p *httpx.Problem }

func (e answerError) Error() string {
	if e.p.Detail == "" {
		return fmt.Sprintf("%d %s", e.p.Status, e.p.Title)
	}
	return fmt.Sprintf("%d %s: %s", e.p.Status, e.p.Title, e.p.Detail)
}

func (e answerError) Unwrap() error { return e.p }

// print writes v as JSON, or as a table of header and rows.
func (g *globals) print(v any, header []string, rows [][]string) error {
	if g.output == "json" {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

var errNotHealthy = errors.New("not healthy")
