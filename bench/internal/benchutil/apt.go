package benchutil

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Peer is a Debian package and the program that shows it is installed.
type Peer struct {
	Package string
	Binary  string // absolute path (may be a glob) or a name looked up in PATH
	Service string // system service the package may start; stopped after install
}

func installed(bin string) bool {
	if strings.Contains(bin, "*") {
		m, _ := filepath.Glob(bin)
		return len(m) > 0
	}
	if strings.HasPrefix(bin, "/") {
		_, err := os.Stat(bin)
		return err == nil
	}
	_, err := exec.LookPath(bin)
	return err == nil
}

// EnsurePeers installs the missing packages with apt-get (one update, one
// install) and stops and disables the system services they start, since the
// benchmarks run each peer themselves with their own configuration.
func EnsurePeers(ctx context.Context, peers ...Peer) error {
	var missing []Peer
	for _, p := range peers {
		if !installed(p.Binary) {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("missing %v and not root: install them with apt-get", names(missing))
	}
	if err := run(ctx, "apt-get", "update", "-qq"); err != nil {
		return err
	}
	for _, p := range missing {
		out, _ := exec.CommandContext(ctx, "apt-cache", "policy", p.Package).Output()
		if !strings.Contains(string(out), "Candidate:") || strings.Contains(string(out), "Candidate: (none)") {
			return fmt.Errorf("package %s has no install candidate", p.Package)
		}
	}
	log.Printf("installing %v", names(missing))
	args := append([]string{"install", "-y", "-qq"}, names(missing)...)
	cmd := exec.CommandContext(ctx, "apt-get", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("apt-get install: %w", err)
	}
	for _, p := range missing {
		if p.Service == "" {
			continue
		}
		// Best effort: with policy-rc.d or no init system nothing was started.
		if _, err := exec.LookPath("systemctl"); err == nil {
			_ = exec.CommandContext(ctx, "systemctl", "disable", "--now", p.Service).Run()
		}
		_ = exec.CommandContext(ctx, "service", p.Service, "stop").Run()
	}
	for _, p := range missing {
		if !installed(p.Binary) {
			return fmt.Errorf("%s still missing after installing %s", p.Binary, p.Package)
		}
	}
	return nil
}

func names(ps []Peer) []string {
	var s []string
	for _, p := range ps {
		s = append(s, p.Package)
	}
	return s
}

func run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return nil
}
