package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/plexushq/plexus/internal/adminclient"
	"github.com/plexushq/plexus/problem"
	"github.com/plexushq/plexus/retry"
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

// validate checks the flags and normalizes --admin-url: host:port means
// http://host:port.
func (g *globals) validate() error {
	if g.output != "table" && g.output != "json" {
		return fmt.Errorf("-o %q: want table or json", g.output)
	}
	u, err := adminURL(g.adminURL)
	if err != nil {
		return err
	}
	g.adminURL = u
	return nil
}

func adminURL(raw string) (string, error) {
	s, err := adminclient.BaseURL(raw)
	if err != nil {
		return "", fmt.Errorf("--admin-url %q: want http://host:port, https://host:port or host:port", raw)
	}
	return s, nil
}

// run wraps a command's RunE: it checks the shared flags first and adds a
// hint to errors a newcomer meets (no node at --admin-url, a wrong token).
func (g *globals) run(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := g.validate(); err != nil {
			return err
		}
		return g.explain(fn(cmd, args))
	}
}

// explain adds what to do to an error whose cause a newcomer cannot see.
func (g *globals) explain(err error) error {
	if err == nil {
		return nil
	}
	var p *problem.Problem
	status := 0
	if errors.As(err, &p) {
		status = p.Status
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("no Plexus node answers at %s: start one with `plexus up`, or point --admin-url (PLEXUS_ADMIN_URL) at one", g.adminURL)
	case status == http.StatusUnauthorized && g.token != "":
		return errors.New("401 Unauthorized: the node refused the token given with --admin-token (or PLEXUS_ADMIN_TOKEN); " +
			"use the node's token, which `plexus up` printed once and keeps in its admin-token file (<data-dir>/admin-token)")
	case status == http.StatusUnauthorized:
		return fmt.Errorf("401 Unauthorized: no admin token found: pass --admin-token (or PLEXUS_ADMIN_TOKEN), "+
			"or --data-dir pointing at the node's data dir, whose admin-token file holds it (tried %s)",
			filepath.Join(g.dataDir, server.TokenFile))
	}
	return err
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
	conn := adminclient.Conn{Base: g.adminURL, Token: g.bearer()}
	_, err := conn.Do(ctx, method, path, in, out)
	if p := (*problem.Problem)(nil); errors.As(err, &p) {
		return answerError{p}
	}
	return err
}

// doIdempotent is do for a request that is safe to repeat (a publish with
// its message id): a 503 with a retry hint (the engine fails over) or a
// request that failed on the way is retried after the hint, a few times.
func (g *globals) doIdempotent(ctx context.Context, method, path string, in, out any) error {
	return retry.Do(ctx, retry.Policy{}, func(ctx context.Context, _ int) error {
		return g.do(ctx, method, path, in, out)
	})
}

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

// answerError is an error answer of the admin API, printed as
// "<status> <title>: <detail>"; errors.As finds its *problem.Problem.
type answerError struct{ p *problem.Problem }

func (e answerError) Error() string {
	if e.p.Detail == "" {
		return fmt.Sprintf("%d %s", e.p.Status, e.p.Title)
	}
	return fmt.Sprintf("%d %s: %s", e.p.Status, e.p.Title, e.p.Detail)
}

func (e answerError) Unwrap() error { return e.p }
