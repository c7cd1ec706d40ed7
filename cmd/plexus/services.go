package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/plexushq/plexus/registry"
)

// newServicesCmd is `plexus services ls|show|register|heartbeat|deregister|status|watch`.
func newServicesCmd() *cobra.Command {
	g := &globals{}
	cmd := &cobra.Command{Use: "services", Aliases: []string{"svc"}, Short: "List, register, deregister and watch service instances"}
	g.register(cmd)
	cmd.AddCommand(newServicesLsCmd(g), newServicesShowCmd(g), newServicesRegisterCmd(g), newServicesHeartbeatCmd(g),
		newServicesDeregisterCmd(g), newServicesStatusCmd(g), newServicesWatchCmd(g))
	return cmd
}

// completeService completes the first argument with registered service names.
func completeService(g *globals) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Second)
		defer cancel()
		var list []registry.ServiceSummary
		if g.validate() != nil || g.do(ctx, "GET", "/v1/services", nil, &list) != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		names := make([]string, len(list))
		for i, s := range list {
			names[i] = s.Name
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

func servicePath(name string, rest ...string) string {
	return "/v1/services/" + url.PathEscape(name) + strings.Join(rest, "")
}

func newServicesLsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List services with their instance counts",
		Args:  cobra.NoArgs,
		RunE: g.run(func(cmd *cobra.Command, _ []string) error {
			var list []registry.ServiceSummary
			if err := g.do(cmd.Context(), "GET", "/v1/services", nil, &list); err != nil {
				return err
			}
			rows := make([][]string, len(list))
			for i, s := range list {
				rows[i] = []string{s.Name, strconv.Itoa(s.Instances), strconv.Itoa(s.Healthy),
					strconv.Itoa(s.Unhealthy), strconv.Itoa(s.Draining)}
			}
			return g.print(list, []string{"NAME", "INSTANCES", "HEALTHY", "UNHEALTHY", "DRAINING"}, rows)
		}),
	}
}

func instanceRows(list []*registry.Instance) [][]string {
	rows := make([][]string, len(list))
	for i, in := range list {
		last := "-"
		if in.LastCheck != nil {
			last = time.Since(*in.LastCheck).Round(time.Second).String() + " ago"
		}
		rows[i] = []string{in.ID, in.URL, string(in.Status), strconv.Itoa(in.Weight), dash(in.Version), dash(in.Zone),
			last, time.Until(in.ExpiresAt).Round(time.Second).String(), dash(oneLine(in.CheckOutput, 60))}
	}
	return rows
}

var instanceHeader = []string{"ID", "URL", "STATUS", "WEIGHT", "VERSION", "ZONE", "LAST CHECK", "EXPIRES IN", "CHECK OUTPUT"}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func newServicesShowCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a service's instances",
		Args:  cobra.ExactArgs(1),
		RunE: g.run(func(cmd *cobra.Command, args []string) error {
			var info registry.ServiceInfo
			if err := g.do(cmd.Context(), "GET", servicePath(args[0]), nil, &info); err != nil {
				return err
			}
			return g.print(info, instanceHeader, instanceRows(info.Instances))
		}),
	}
	cmd.ValidArgsFunction = completeService(g)
	return cmd
}

// registerFlags are the options of `services register`.
type registerFlags struct {
	weight, rise, fall       int
	version, zone, checkPath string
	tags, meta               []string
	ttl, interval, timeout   time.Duration
}

func (f *registerFlags) registration(cmd *cobra.Command, rawURL string) (registry.Registration, error) {
	fl := cmd.Flags()
	reg := registry.Registration{URL: rawURL, Version: f.version, Zone: f.zone, Tags: f.tags}
	if fl.Changed("weight") {
		reg.Weight = &f.weight
	}
	if len(f.meta) > 0 {
		reg.Metadata = map[string]string{}
		for _, kv := range f.meta {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return reg, fmt.Errorf("--meta %q: want key=value", kv)
			}
			reg.Metadata[k] = v
		}
	}
	reg.TTL = f.ttl
	var c registry.Check
	c.Path, c.Interval, c.Timeout, c.Rise, c.Fall = f.checkPath, f.interval, f.timeout, f.rise, f.fall
	if c != (registry.Check{}) {
		reg.Check = &c
	}
	return reg, nil
}

func newServicesRegisterCmd(g *globals) *cobra.Command {
	var f registerFlags
	var keepAlive bool
	cmd := &cobra.Command{
		Use:   "register NAME ID URL",
		Short: "Register (or replace) an instance; it expires after --ttl without heartbeats (or --keep-alive)",
		Example: `  plexus services register user-service user-1 http://127.0.0.1:3001 --weight 2 --tag v2 --meta team=core
  plexus services register api a1 https://10.0.0.5:8443 --ttl 1m --check-path /ready --check-interval 2s
  plexus services register web web-1 http://127.0.0.1:3001 --keep-alive   # heartbeats until Ctrl-C, then deregisters`,
		Args: cobra.ExactArgs(3),
		RunE: g.run(func(cmd *cobra.Command, args []string) error {
			reg, err := f.registration(cmd, args[2])
			if err != nil {
				return err
			}
			if keepAlive {
				return keepRegistered(cmd.Context(), g, args[0], args[1], reg)
			}
			var inst registry.Instance
			if err := g.do(cmd.Context(), "PUT", servicePath(args[0], "/instances/", url.PathEscape(args[1])), reg, &inst); err != nil {
				return err
			}
			return g.print(inst, instanceHeader, instanceRows([]*registry.Instance{&inst}))
		}),
	}
	cmd.ValidArgsFunction = completeService(g)
	fl := cmd.Flags()
	fl.IntVar(&f.weight, "weight", 1, "weight for weighted balancing, 1-1000")
	fl.StringVar(&f.version, "version", "", "version label")
	fl.StringVar(&f.zone, "zone", "", "zone label")
	fl.StringArrayVar(&f.tags, "tag", nil, "tag (repeatable)")
	fl.StringArrayVar(&f.meta, "meta", nil, "metadata key=value (repeatable)")
	fl.DurationVar(&f.ttl, "ttl", 0, "lease without heartbeats (default 30s)")
	fl.StringVar(&f.checkPath, "check-path", "", "health check path (default /health)")
	fl.DurationVar(&f.interval, "check-interval", 0, "health check interval (default 10s, at least 100ms)")
	fl.DurationVar(&f.timeout, "check-timeout", 0, "health check timeout (default 5s, at most the interval)")
	fl.IntVar(&f.rise, "rise", 0, "passes in a row that make an unhealthy instance healthy (default 2)")
	fl.IntVar(&f.fall, "fall", 0, "failures in a row that make a healthy instance unhealthy (default 2)")
	fl.BoolVar(&keepAlive, "keep-alive", false, "stay running and heartbeat every third of --ttl until interrupted, then deregister")
	return cmd
}

// keepRegistered registers the instance and heartbeats until ctx ends
// (Ctrl-C), registering again if the lease was lost; then it deregisters.
func keepRegistered(ctx context.Context, g *globals, service, id string, reg registry.Registration) error {
	cl, err := registry.NewClient(g.adminURL, g.bearer(), registry.ClientConfig{Timeout: g.timeout})
	if err != nil {
		return err
	}
	defer cl.Close()
	r, err := cl.NewRegistrar(service, id, reg, registry.RegistrarConfig{
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return err
	}
	if err := r.Start(ctx); err != nil {
		return err
	}
	inst := r.Instance()
	if err := g.print(inst, instanceHeader, instanceRows([]*registry.Instance{inst})); err != nil {
		_ = r.Stop(context.WithoutCancel(ctx))
		return err
	}
	fmt.Fprintf(os.Stderr, "keeping %s/%s registered (a heartbeat every %s); Ctrl-C deregisters it\n", service, id, inst.TTL/3)
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.timeout)
	defer cancel()
	if err := r.Stop(sctx); err != nil {
		return fmt.Errorf("deregister %s/%s: %w", service, id, err)
	}
	fmt.Fprintf(os.Stderr, "deregistered %s/%s\n", service, id)
	return nil
}

func newServicesHeartbeatCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "heartbeat NAME ID",
		Short: "Renew an instance's lease for another TTL",
		Args:  cobra.ExactArgs(2),
		RunE: g.run(func(cmd *cobra.Command, args []string) error {
			var out registry.HeartbeatAnswer
			err := g.do(cmd.Context(), "PUT", servicePath(args[0], "/instances/", url.PathEscape(args[1]), "/heartbeat"), nil, &out)
			var ae answerError
			if errors.As(err, &ae) && ae.p.Status == http.StatusNotFound {
				return fmt.Errorf("%w\nthe lease ended (or it never existed): register it again with `plexus services register`", err)
			}
			if err != nil {
				return err
			}
			return g.print(out, []string{"EXPIRES AT", "TTL"},
				[][]string{{out.ExpiresAt.Local().Format(time.RFC3339), out.TTL.String()}})
		}),
	}
	cmd.ValidArgsFunction = completeService(g)
	return cmd
}

func newServicesDeregisterCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "deregister NAME ID",
		Short: "Remove an instance",
		Args:  cobra.ExactArgs(2),
		RunE: g.run(func(cmd *cobra.Command, args []string) error {
			if err := g.do(cmd.Context(), "DELETE", servicePath(args[0], "/instances/", url.PathEscape(args[1])), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deregistered %s/%s\n", args[0], args[1])
			return nil
		}),
	}
	cmd.ValidArgsFunction = completeService(g)
	return cmd
}

func newServicesStatusCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:       "status NAME ID draining|healthy",
		Short:     "Set an instance draining (no new traffic) or back to healthy",
		Args:      cobra.ExactArgs(3),
		ValidArgs: []string{"draining", "healthy"},
		RunE: g.run(func(cmd *cobra.Command, args []string) error {
			var inst registry.Instance
			body := map[string]string{"status": args[2]}
			if err := g.do(cmd.Context(), "PUT", servicePath(args[0], "/instances/", url.PathEscape(args[1]), "/status"), body, &inst); err != nil {
				return err
			}
			return g.print(inst, instanceHeader, instanceRows([]*registry.Instance{&inst}))
		}),
	}
	cmd.ValidArgsFunction = completeService(g)
	return cmd
}

func newServicesWatchCmd(g *globals) *cobra.Command {
	var service string
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Print the registry's instances, then every change, until interrupted",
		Args:  cobra.NoArgs,
		RunE: g.run(func(cmd *cobra.Command, _ []string) error {
			cl, err := registry.NewClient(g.adminURL, g.bearer(), registry.ClientConfig{Timeout: g.timeout})
			if err != nil {
				return err
			}
			defer cl.Close()
			ctx := cmd.Context()
			ws, err := cl.Watch(ctx, service)
			if err != nil {
				return err
			}
			defer ws.Close()
			for _, in := range ws.Snapshot() {
				printWatch(g, registry.Event{Type: "snapshot", Service: in.Service, ID: in.ID, Instance: in, Revision: in.Revision})
			}
			for {
				ev, err := ws.Next(ctx)
				if ctx.Err() != nil {
					return nil // interrupted
				}
				if err != nil {
					return err
				}
				printWatch(g, ev)
			}
		}),
	}
	cmd.Flags().StringVar(&service, "service", "", "watch only this service")
	_ = cmd.RegisterFlagCompletionFunc("service", completeService(g))
	return cmd
}

// printWatch prints one event per line: JSON, or columns.
func printWatch(g *globals, ev registry.Event) {
	if g.output == "json" {
		b, _ := json.Marshal(ev)
		fmt.Fprintln(os.Stdout, string(b))
		return
	}
	status, u := "-", "-"
	if ev.Instance != nil {
		status, u = string(ev.Instance.Status), ev.Instance.URL
	}
	fmt.Fprintf(os.Stdout, "%s  %-8s %s/%s  %s  %s\n", time.Now().Format("15:04:05.000"), ev.Type, ev.Service, ev.ID, status, u)
}
