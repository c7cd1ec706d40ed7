package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"time"

	"github.com/spf13/cobra"
)

func newHealthCmd() *cobra.Command {
	var url string
	var timeout time.Duration
	var quiet bool
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Check a node's health; exit 0 when healthy, 1 otherwise (for container health checks)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			status, body, err := fetchHealth(ctx, url)
			if err != nil {
				return exitError{1, fmt.Sprintf("unhealthy: %v", err)}
			}
			if !quiet {
				os.Stdout.Write(body)
			}
			if status != http.StatusOK {
				return exitError{1, fmt.Sprintf("unhealthy: %s answered %d", url, status)}
			}
			var h struct {
				Status string `json:"status"`
			}
			if json.Unmarshal(body, &h) != nil || h.Status != "healthy" {
				return exitError{1, fmt.Sprintf("unhealthy: %s: %v", url, errNotHealthy)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&url, "url", "http://127.0.0.1:3100/health", "health endpoint to check")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "bound on the check")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print nothing, only set the exit code")
	return cmd
}

func fetchHealth(ctx context.Context, url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, body, err
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "plexus %s %s %s/%s\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		},
	}
}
