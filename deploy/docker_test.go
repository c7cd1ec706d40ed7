//go:build deploy

// The container tests: run by scripts/test-deploy.sh (go test -tags
// deploy ./deploy/) after it built the images with scripts/image.sh.
package deploy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// images names the images scripts/test-deploy.sh built, and run the
// names of what the test creates (the script removes them too when the
// test is interrupted).
type images struct{ prefix, tag, run string }

func imagesFromEnv(t *testing.T) images {
	t.Helper()
	tag := os.Getenv("PLEXUS_DEPLOY_TAG")
	if tag == "" {
		t.Fatal("PLEXUS_DEPLOY_TAG is not set: run ./scripts/test-deploy.sh, which builds the images first")
	}
	prefix := os.Getenv("PLEXUS_DEPLOY_PREFIX")
	if prefix == "" {
		prefix = "plexus"
	}
	run := os.Getenv("PLEXUS_DEPLOY_RUN")
	if run == "" {
		run = "plexusdt" + randomHex(4)
	}
	return images{prefix: prefix, tag: tag, run: run}
}

func (im images) plexus() string { return im.prefix + ":" + im.tag }

// run runs a command bounded by d and answers its stdout; a failure is
// fatal and shows stderr.
func run(t *testing.T, d time.Duration, env []string, name string, args ...string) string {
	t.Helper()
	out, err := tryRun(d, env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return out
}

func tryRun(d time.Duration, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w: %s%s", err, stderr.String(), stdout.String())
	}
	return stdout.String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// compose drives one compose project of deploy/docker-compose.yml.
type compose struct {
	t       *testing.T
	cmd     []string // "docker compose" or "docker-compose"
	project string
	env     []string
	file    string
}

func newCompose(t *testing.T, im images, token string) *compose {
	t.Helper()
	cmd := strings.Fields(os.Getenv("PLEXUS_COMPOSE"))
	if len(cmd) == 0 {
		cmd = []string{"docker-compose"}
		if _, err := tryRun(30*time.Second, nil, "docker", "compose", "version"); err == nil {
			cmd = []string{"docker", "compose"}
		}
	}
	file, err := filepath.Abs("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	c := &compose{t: t, cmd: cmd, project: im.run, file: file, env: []string{
		"PLEXUS_ADMIN_TOKEN=" + token,
		"PLEXUS_IMAGE_PREFIX=" + im.prefix,
		"PLEXUS_TAG=" + im.tag,
		// Loopback only, on ports the engine picks.
		"PLEXUS_GATEWAY_BIND=127.0.0.1:",
		"PLEXUS_ADMIN_BIND=127.0.0.1:",
	}}
	return c
}

func (c *compose) args(a ...string) []string {
	return append(append(append([]string{}, c.cmd[1:]...), "-p", c.project, "-f", c.file), a...)
}

// run runs a compose subcommand, fatal on failure.
func (c *compose) run(d time.Duration, a ...string) string {
	c.t.Helper()
	return run(c.t, d, c.env, c.cmd[0], c.args(a...)...)
}

// down removes every container, network and volume of the project.
func (c *compose) down() {
	if _, err := tryRun(2*time.Minute, c.env, c.cmd[0], c.args("down", "-v", "--remove-orphans", "-t", "10")...); err != nil {
		c.t.Errorf("compose down: %v", err)
	}
}

// logs shows the last lines of every container's log.
func (c *compose) logs() {
	out, _ := tryRun(time.Minute, c.env, c.cmd[0], c.args("logs", "--no-color", "--tail", "40")...)
	c.t.Logf("compose logs:\n%s", out)
}

// port answers host:port published for a container port of a service.
func (c *compose) port(service string, port int) string {
	c.t.Helper()
	out := strings.TrimSpace(c.run(30*time.Second, "port", service, fmt.Sprint(port)))
	if !strings.HasPrefix(out, "127.0.0.1:") {
		c.t.Fatalf("%s:%d is published on %q, want loopback", service, port, out)
	}
	return out
}

// containers answers the ids of a service's containers.
func (c *compose) containers(service string) []string {
	c.t.Helper()
	return strings.Fields(c.run(30*time.Second, "ps", "-q", service))
}

// inspect answers a docker inspect template's value for a container.
func inspect(t *testing.T, id, format string) string {
	t.Helper()
	return strings.TrimSpace(run(t, 30*time.Second, nil, "docker", "inspect", "-f", format, id))
}

// api calls a Plexus admin or gateway URL with the token and decodes JSON.
type api struct {
	base, token string
	hc          *http.Client
}

func (a api) do(method, path string, in, out any) (int, http.Header, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, nil, err
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+a.base+path, body)
	if err != nil {
		return 0, nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return resp.StatusCode, resp.Header, err
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, resp.Header, fmt.Errorf("%s %s: %w: %.200s", method, path, err, b)
		}
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, resp.Header, fmt.Errorf("%s %s: HTTP %d: %.300s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode, resp.Header, nil
}

// must is do that fails the test on an error or an unexpected status.
func (a api) must(t *testing.T, method, path string, in, out any, want int) http.Header {
	t.Helper()
	code, h, err := a.do(method, path, in, out)
	if code != want {
		t.Fatalf("%s %s: HTTP %d, want %d (%v)", method, path, code, want, err)
	}
	return h
}

// eventually polls cond every 100ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start)
}

// waitReady polls GET /ready on an admin address every 20ms; it answers
// how long that took.
func waitReady(t *testing.T, admin string, d time.Duration) time.Duration {
	t.Helper()
	hc := &http.Client{Timeout: time.Second}
	start := time.Now()
	for {
		resp, err := hc.Get("http://" + admin + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(start)
			}
		}
		if time.Since(start) > d {
			t.Fatalf("%s/ready: not ready within %s (last: %v)", admin, d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// report prints one measured number in a form scripts/test-deploy.sh
// collects into its summary.
func report(t *testing.T, format string, a ...any) {
	t.Helper()
	t.Logf("REPORT "+format, a...)
}
