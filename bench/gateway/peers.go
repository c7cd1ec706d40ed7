package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/plexushq/plexus/bench/internal/benchutil"
)

// target is one thing wrk is pointed at.
type target struct {
	name string
	url  string
	proc *benchutil.Proc
}

// setup describes one CPU budget.
type setup struct {
	cores    int
	proxyCPU string // taskset list for the proxies ("" = free)
	loadCPU  string // taskset list for wrk and the backend
	threads  int    // wrk threads
}

func (s setup) env() []string { return []string{fmt.Sprintf("GOMAXPROCS=%d", s.cores)} }

func startBackend(ctx context.Context, ps *benchutil.Procs, s setup) (string, *benchutil.Proc, error) {
	self, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	port, err := benchutil.FreePort()
	if err != nil {
		return "", nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	pr, err := ps.Start(fmt.Sprintf("backend-%dc", s.cores), s.loadCPU, s.env(), self, "backend", addr)
	if err != nil {
		return "", nil, err
	}
	if err := benchutil.WaitHTTP(ctx, "http://"+addr+"/", 200, pr, 10*time.Second); err != nil {
		return "", nil, err
	}
	return addr, pr, nil
}

func listenAddr() (string, error) {
	port, err := benchutil.FreePort()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("127.0.0.1:%d", port), nil
}

func startNginx(ctx context.Context, ps *benchutil.Procs, s setup, backend string) (*target, error) {
	addr, err := listenAddr()
	if err != nil {
		return nil, err
	}
	dir := ps.Path(fmt.Sprintf("nginx-%dc", s.cores))
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o777); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`worker_processes %d;
daemon off;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 4096; }
http {
  access_log %[2]s/access.log;
  client_body_temp_path %[2]s/tmp/body;
  proxy_temp_path %[2]s/tmp/proxy;
  fastcgi_temp_path %[2]s/tmp/fastcgi;
  uwsgi_temp_path %[2]s/tmp/uwsgi;
  scgi_temp_path %[2]s/tmp/scgi;
  upstream backend { server %[3]s; keepalive 128; }
  server {
    listen %[4]s;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`, s.cores, dir, backend, addr)
	path, err := ps.WriteFile(fmt.Sprintf("nginx-%dc/nginx.conf", s.cores), conf)
	if err != nil {
		return nil, err
	}
	pr, err := ps.Start(fmt.Sprintf("nginx-%dc", s.cores), s.proxyCPU, nil,
		"nginx", "-p", dir, "-e", dir+"/error.log", "-c", path)
	if err != nil {
		return nil, err
	}
	return &target{name: "nginx", url: "http://" + addr + "/", proc: pr}, nil
}

func startHAProxy(ctx context.Context, ps *benchutil.Procs, s setup, backend string) (*target, error) {
	addr, err := listenAddr()
	if err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`global
  nbthread %d
  maxconn 4096
  log stdout format raw local0
defaults
  mode http
  log global
  option httplog
  http-reuse always
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fe
  bind %s
  default_backend be
backend be
  server s1 %s
`, s.cores, addr, backend)
	path, err := ps.WriteFile(fmt.Sprintf("haproxy-%dc.cfg", s.cores), conf)
	if err != nil {
		return nil, err
	}
	// Its access log goes to stdout, which is the process's log file.
	pr, err := ps.Start(fmt.Sprintf("haproxy-%dc", s.cores), s.proxyCPU, nil, "haproxy", "-db", "-f", path)
	if err != nil {
		return nil, err
	}
	return &target{name: "HAProxy", url: "http://" + addr + "/", proc: pr}, nil
}

func startCaddy(ctx context.Context, ps *benchutil.Procs, s setup, backend string) (*target, error) {
	addr, err := listenAddr()
	if err != nil {
		return nil, err
	}
	dir := ps.Path(fmt.Sprintf("caddy-%dc", s.cores))
	conf := fmt.Sprintf(`{
	admin off
	auto_https off
}
http://%s {
	log {
		output file %s/access.log
	}
	reverse_proxy %s
}
`, addr, dir, backend)
	path, err := ps.WriteFile(fmt.Sprintf("caddy-%dc/Caddyfile", s.cores), conf)
	if err != nil {
		return nil, err
	}
	env := append(s.env(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	pr, err := ps.Start(fmt.Sprintf("caddy-%dc", s.cores), s.proxyCPU, env,
		"caddy", "run", "--config", path, "--adapter", "caddyfile")
	if err != nil {
		return nil, err
	}
	return &target{name: "Caddy", url: "http://" + addr + "/", proc: pr}, nil
}

// plexusConfig is the configuration the benchmark runs Plexus with: P2C,
// breaker, a rate limit far above the offered load, an access log file,
// and tracing sampled at sample: 0 none, 1 everything, a negative value
// the shipped default (telemetry.DefaultSampleRatio: no sampleRatio key).
func plexusConfig(sample float64) func(accessLog string) string {
	telemetry := fmt.Sprintf("telemetry:\n  sampleRatio: %g\n", sample)
	if sample < 0 {
		telemetry = ""
	}
	return func(accessLog string) string {
		return fmt.Sprintf(`gateway:
  strategy: p2c
  timeout: 30s
  retries: {attempts: 2, budget: 0.2}
  breaker: {failureThreshold: 5, failureRatio: 0.5, minRequests: 20, window: 10s, resetTimeout: 60s, halfOpenRequests: 3}
  rateLimit: {requests: 1000000000, per: 1s, burst: 1000000000, key: ip}
  accessLog: %s
%s`, accessLog, telemetry)
	}
}

const adminToken = "bench-admin-token-0123456789"

func buildPlexus(ctx context.Context, ps *benchutil.Procs) (string, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	bin := ps.Path("plexus")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/plexus")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/plexus: %w: %s", err, out)
	}
	return bin, nil
}

func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("run from inside the plexus module")
	}
	return filepath.Dir(mod), nil
}

func startPlexus(ctx context.Context, ps *benchutil.Procs, s setup, bin, backend string, sample float64, label string, env []string, args ...string) (*target, error) {
	return startPlexusCmd(ctx, ps, s, backend, label, env, plexusConfig(sample), func(dir, gw, admin, cfg string) []string {
		return append([]string{bin, "serve", "--roles", "gateway,control", "--data-dir", dir + "/data", "--gateway-addr", gw,
			"--admin-addr", admin, "--admin-token", adminToken, "--config", cfg, "--log-level", "warn"}, args...)
	})
}

// startPlexusCmd starts a Plexus node with argv, registers the backend
// through the admin API and waits until the gateway proxies to it.
func startPlexusCmd(ctx context.Context, ps *benchutil.Procs, s setup, backend, label string, env []string,
	config func(accessLog string) string, argv func(dir, gw, admin, cfg string) []string) (*target, error) {
	gw, err := listenAddr()
	if err != nil {
		return nil, err
	}
	admin, err := listenAddr()
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("plexus%s-%dc", strings.ReplaceAll(label, " ", "-"), s.cores)
	dir := ps.Path(name)
	cfg, err := ps.WriteFile(name+"/plexus.yaml", config(dir+"/access.log"))
	if err != nil {
		return nil, err
	}
	pr, err := ps.Start(name, s.proxyCPU, append(s.env(), env...), argv(dir, gw, admin, cfg)...)
	if err != nil {
		return nil, err
	}
	if err := benchutil.WaitHTTP(ctx, "http://"+admin+"/health", 200, pr, 30*time.Second); err != nil {
		return nil, err
	}
	// A lease longer than the whole run: the benchmark sends no heartbeats.
	body, _ := json.Marshal(map[string]any{"url": "http://" + backend, "ttl": "2h"})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut,
		"http://"+admin+"/v1/services/bench/instances/backend-1", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("register backend: %w", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("register backend: %s: %s", resp.Status, b)
	}
	url := "http://" + gw + "/api/bench/"
	if err := benchutil.WaitHTTP(ctx, url, 200, pr, 15*time.Second); err != nil {
		return nil, err
	}
	return &target{name: "Plexus" + label, url: url, proc: pr}, nil
}
