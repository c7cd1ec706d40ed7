package deploy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/plexushq/plexus/gateway"
	"github.com/plexushq/plexus/server"
)

// helmVersion is the Helm the chart is checked with. It runs through
// `go run pkg@version`, which builds it outside this module: go.mod does
// not list it and is not changed.
const helmVersion = "v3.22.0"

const chart = "helm/plexus"

// helm runs a helm command, bounded in time. The first run on a machine
// builds Helm (minutes); `go run` caches the executable, so later runs
// start in about a second.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", append([]string{"run", "helm.sh/helm/v3/cmd/helm@" + helmVersion}, args...)...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), err
}

// object is one rendered Kubernetes object.
type object map[string]any

func (o object) kind() string { return str(o, "kind") }
func (o object) name() string { return str(o, "metadata", "name") }

// get walks maps by key and lists by index.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				if o, isObj := v.(object); isObj {
					m = o
				} else {
					return nil
				}
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any, path ...any) string {
	s, _ := get(v, path...).(string)
	return s
}

func render(t *testing.T, values ...string) ([]object, error) {
	t.Helper()
	args := []string{"template", "px", chart, "--namespace", "plexus"}
	for _, v := range values {
		args = append(args, "-f", v)
	}
	out, err := helm(t, args...)
	if err != nil {
		return nil, err
	}
	var objs []object
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var o object
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			t.Fatalf("rendered YAML: %v\n%s", err, out)
		}
		if o != nil {
			objs = append(objs, o)
		}
	}
}

func kinds(objs []object) []string {
	var ks []string
	for _, o := range objs {
		ks = append(ks, o.kind()+"/"+o.name())
	}
	slices.Sort(ks)
	return ks
}

// TestHelmChart lints the chart with each values file of its ci/
// directory and checks the objects `helm template` renders: the kinds for
// the mode, the node's probes, security context, image tag, admin token
// from a Secret, and the engine's flags.
func TestHelmChart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds Helm on first use")
	}
	cases := []struct {
		values string
		kinds  []string
		check  func(t *testing.T, pod any, args []string)
	}{
		{"ci/embedded-values.yaml",
			[]string{"PodDisruptionBudget/px-plexus", "Secret/px-plexus-admin-token", "Service/px-plexus", "Service/px-plexus-admin",
				"Service/px-plexus-headless", "StatefulSet/px-plexus"},
			func(t *testing.T, _ any, args []string) {
				wantArgs(t, args, "up", "--sync=always", "--shutdown-timeout=25s")
			}},
		{"ci/external-values.yaml",
			[]string{"ConfigMap/px-plexus-config", "Deployment/px-plexus", "PodDisruptionBudget/px-plexus", "Service/px-plexus",
				"Service/px-plexus-admin", "ServiceMonitor/px-plexus"},
			func(t *testing.T, pod any, args []string) {
				wantArgs(t, args, "serve", "--roles=gateway,control,checker",
					"--nats=tls://nats-0.nats:4222,tls://nats-1.nats:4222,tls://nats-2.nats:4222", "--nats-replicas=3",
					"--nats-creds=/etc/plexus/nats-creds/nats.creds", "--nats-tls-ca=/etc/plexus/nats-tls/ca.crt",
					"--nats-tls-cert=/etc/plexus/nats-tls/tls.crt", "--nats-tls-key=/etc/plexus/nats-tls/tls.key",
					"--config=/etc/plexus/config/plexus.yaml")
				wantMount(t, pod, "nats-creds", "/etc/plexus/nats-creds", "plexus-nats-creds")
				wantMount(t, pod, "nats-tls", "/etc/plexus/nats-tls", "plexus-nats-tls")
			}},
		{"ci/gateway-only-values.yaml",
			[]string{"Deployment/px-plexus", "Service/px-plexus", "Service/px-plexus-admin"},
			func(t *testing.T, _ any, args []string) {
				wantArgs(t, args, "serve", "--roles=gateway", "--nats=nats://nats.messaging:4222",
					"--nats-tls-ca=/etc/plexus/nats-tls/ca.crt")
				if slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--nats-tls-cert") }) {
					t.Errorf("client certificate flags without nats.tls.cert: %v", args)
				}
			}},
	}
	for _, c := range cases {
		t.Run(strings.TrimSuffix(filepath.Base(c.values), "-values.yaml"), func(t *testing.T) {
			if out, err := helm(t, "lint", "--strict", chart, "-f", filepath.Join(chart, c.values)); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			objs, err := render(t, filepath.Join(chart, c.values))
			if err != nil {
				t.Fatal(err)
			}
			if got := kinds(objs); !slices.Equal(got, c.kinds) {
				t.Fatalf("rendered %v, want %v", got, c.kinds)
			}
			for _, o := range objs {
				checkObject(t, o)
				if o.kind() == "StatefulSet" || o.kind() == "Deployment" {
					pod := get(o, "spec", "template", "spec")
					c.check(t, pod, checkNode(t, pod))
				}
			}
		})
	}
}

// TestHelmChartRefuses: values that cannot make a working node fail to
// render, with a message naming the value.
func TestHelmChartRefuses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds Helm on first use")
	}
	dir := t.TempDir()
	cases := map[string]struct{ values, want string }{
		"latest tag":            {"image: {tag: latest}\nadminToken: {value: x}\n", `"latest" is not accepted`},
		"no admin token":        {"image: {tag: '1.0'}\n", "adminToken.existingSecret"},
		"external without urls": {"mode: external\nadminToken: {value: x}\n", "nats.urls"},
		"unknown mode":          {"mode: cluster\nadminToken: {value: x}\n", `mode "cluster"`},
		"half a client cert":    {"mode: external\nadminToken: {value: x}\nnats: {urls: [nats://n:4222], tls: {existingSecret: s, cert: tls.crt}}\n", "mutual TLS"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			f := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".yaml")
			if err := os.WriteFile(f, []byte(c.values), 0o644); err != nil {
				t.Fatal(err)
			}
			objs, err := render(t, f)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("rendered %v (err %v), want an error about %s", kinds(objs), err, c.want)
			}
		})
	}
}

// checkObject holds for every object: the chart's labels, and a
// ConfigMap's file is a configuration the node accepts.
func checkObject(t *testing.T, o object) {
	t.Helper()
	if str(o, "metadata", "labels", "app.kubernetes.io/name") != "plexus" {
		t.Errorf("%s/%s without the chart's labels", o.kind(), o.name())
	}
	switch o.kind() {
	case "ConfigMap":
		var fc server.FileConfig
		if err := server.ParseFile([]byte(str(o, "data", "plexus.yaml")), &fc); err != nil {
			t.Errorf("ConfigMap plexus.yaml: %v", err)
		}
		b, _ := yaml.Marshal(&fc.Gateway)
		if _, err := gateway.ParseConfig(b); err != nil {
			t.Errorf("ConfigMap gateway section: %v", err)
		}
	case "Service":
		if typ := str(o, "spec", "type"); strings.HasSuffix(o.name(), "-admin") && typ != "ClusterIP" {
			t.Errorf("admin Service of type %s, want ClusterIP", typ)
		}
	case "ServiceMonitor":
		if str(o, "spec", "endpoints", 0, "path") != "/metrics" || str(o, "spec", "endpoints", 0, "port") != "admin" {
			t.Errorf("ServiceMonitor endpoints %v", get(o, "spec", "endpoints"))
		}
	}
}

// checkNode checks the node's pod and answers the container's arguments.
func checkNode(t *testing.T, pod any) []string {
	t.Helper()
	if get(pod, "securityContext", "runAsNonRoot") != true || get(pod, "securityContext", "runAsUser") != 65532 {
		t.Errorf("pod securityContext %v, want non-root user 65532", get(pod, "securityContext"))
	}
	cs, _ := get(pod, "containers").([]any)
	if len(cs) != 1 {
		t.Fatalf("%d containers, want 1", len(cs))
	}
	c := cs[0]
	image := str(c, "image")
	if i := strings.LastIndex(image, ":"); i < 0 || strings.Contains(image[i:], "/") || image[i+1:] == "latest" || image[i+1:] == "" {
		t.Errorf("image %q: want an explicit tag other than latest", image)
	}
	sc := get(c, "securityContext")
	if get(sc, "readOnlyRootFilesystem") != true || get(sc, "allowPrivilegeEscalation") != false ||
		get(sc, "runAsNonRoot") != true || str(sc, "capabilities", "drop", 0) != "ALL" {
		t.Errorf("container securityContext %v", sc)
	}
	for probe, path := range map[string]string{"readinessProbe": "/ready", "livenessProbe": "/health", "startupProbe": "/health"} {
		if str(c, probe, "httpGet", "path") != path || str(c, probe, "httpGet", "port") != "admin" {
			t.Errorf("%s %v, want GET %s on the admin port", probe, get(c, probe), path)
		}
	}
	token := false
	for _, e := range get(c, "env").([]any) {
		if str(e, "name") == "PLEXUS_ADMIN_TOKEN" {
			token = str(e, "valueFrom", "secretKeyRef", "name") != "" && get(e, "value") == nil
		}
	}
	if !token {
		t.Errorf("PLEXUS_ADMIN_TOKEN is not read from a Secret: %v", get(c, "env"))
	}
	// The root file system is read-only: the data directory and /tmp are
	// volumes.
	for _, dir := range []string{"/var/lib/plexus", "/tmp"} {
		if !slices.ContainsFunc(get(c, "volumeMounts").([]any), func(m any) bool { return str(m, "mountPath") == dir }) {
			t.Errorf("nothing mounted at %s", dir)
		}
	}
	var args []string
	for _, a := range get(c, "args").([]any) {
		args = append(args, a.(string))
	}
	if cmd := args[0]; cmd == "serve" {
		roles := strings.TrimPrefix(args[1], "--roles=")
		if _, err := server.ParseRoles(roles); err != nil {
			t.Errorf("roles %q: %v", roles, err)
		}
	}
	return args
}

func wantArgs(t *testing.T, args []string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !slices.Contains(args, w) {
			t.Errorf("args %v lack %s", args, w)
		}
	}
	if args[0] != want[0] {
		t.Errorf("command %q, want %q", args[0], want[0])
	}
}

func wantMount(t *testing.T, pod any, volume, path, secret string) {
	t.Helper()
	mounted := slices.ContainsFunc(get(pod, "containers", 0, "volumeMounts").([]any), func(m any) bool {
		return str(m, "name") == volume && str(m, "mountPath") == path && get(m, "readOnly") == true
	})
	fromSecret := slices.ContainsFunc(get(pod, "volumes").([]any), func(v any) bool {
		return str(v, "name") == volume && str(v, "secret", "secretName") == secret
	})
	if !mounted || !fromSecret {
		t.Errorf("volume %s: mounted read-only at %s %v, from Secret %s %v", volume, path, mounted, secret, fromSecret)
	}
}
