//go:build deploy

package deploy_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestImage checks the plexus image as built: scratch with one binary,
// a numeric non-root user, the data volume, the health check through
// `plexus health`, OCI labels and the version stamped into the binary;
// and it measures the image's size and a container's start-to-ready time.
func TestImage(t *testing.T) {
	im := imagesFromEnv(t)
	var cfg struct {
		Size   int64 `json:"Size"`
		Config struct {
			User        string              `json:"User"`
			Volumes     map[string]struct{} `json:"Volumes"`
			Labels      map[string]string   `json:"Labels"`
			Entrypoint  []string            `json:"Entrypoint"`
			Healthcheck struct {
				Test []string `json:"Test"`
			} `json:"Healthcheck"`
		} `json:"Config"`
		RootFS struct {
			Layers []string `json:"Layers"`
		} `json:"RootFS"`
	}
	out := run(t, time.Minute, nil, "docker", "image", "inspect", "-f", "{{json .}}", im.plexus())
	if err := json.Unmarshal([]byte(out), &cfg); err != nil {
		t.Fatal(err)
	}
	c := cfg.Config
	if c.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532", c.User)
	}
	if _, ok := c.Volumes["/var/lib/plexus"]; !ok {
		t.Errorf("volumes %v, want /var/lib/plexus", c.Volumes)
	}
	if got := strings.Join(c.Healthcheck.Test, " "); !strings.Contains(got, "/usr/local/bin/plexus health") {
		t.Errorf("healthcheck %q, want plexus health", got)
	}
	if len(cfg.RootFS.Layers) != 2 {
		t.Errorf("%d layers, want 2 (the data directory and the binary on scratch)", len(cfg.RootFS.Layers))
	}
	for _, k := range []string{"title", "version", "revision", "created", "source"} {
		if c.Labels["org.opencontainers.image."+k] == "" {
			t.Errorf("label org.opencontainers.image.%s missing: %v", k, c.Labels)
		}
	}
	version := c.Labels["org.opencontainers.image.version"]
	got := run(t, time.Minute, nil, "docker", "run", "--rm", im.plexus(), "version")
	if !strings.HasPrefix(got, "plexus "+version+" ") {
		t.Errorf("plexus version in the image: %q, want version %q", got, version)
	}
	report(t, "image %s: %.1f MB (%d bytes), %d layers", im.plexus(), float64(cfg.Size)/1e6, cfg.Size, len(cfg.RootFS.Layers))

	// Start to ready: a fresh container, read-only root file system, an
	// empty volume that the node (user 65532) must be able to write.
	name := im.run + "-image"
	vol := name + "-data"
	t.Cleanup(func() {
		_, _ = tryRun(time.Minute, nil, "docker", "rm", "-f", "-v", name)
		_, _ = tryRun(time.Minute, nil, "docker", "volume", "rm", vol)
	})
	start := time.Now()
	run(t, time.Minute, nil, "docker", "run", "-d", "--name", name, "--read-only", "-v", vol+":/var/lib/plexus",
		"-p", "127.0.0.1::3100", "-e", "PLEXUS_ADMIN_TOKEN=image-test-"+randomHex(8), im.plexus())
	admin := strings.TrimSpace(run(t, 30*time.Second, nil, "docker", "port", name, "3100/tcp"))
	admin = strings.Split(admin, "\n")[0]
	waitReady(t, admin, time.Minute)
	report(t, "container start to ready (docker run to GET /ready 200): %s", time.Since(start).Round(time.Millisecond))
	eventually(t, time.Minute, "docker reports the container healthy (HEALTHCHECK plexus health)", func() bool {
		return inspect(t, name, "{{.State.Health.Status}}") == "healthy"
	})
}

// TestImageTLSRoots shows that the scratch image verifies TLS: `plexus
// health` against an https server whose certificate no public root signed
// fails with "signed by unknown authority" (a root pool exists; without
// one Go says "failed to load system roots"), and succeeds once the
// server's CA is mounted and named by SSL_CERT_FILE.
func TestImageTLSRoots(t *testing.T) {
	im := imagesFromEnv(t)
	dir := t.TempDir()
	srv, caPEM := tlsServer(t)
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	url := srv.URL + "/health"
	out, err := tryRun(time.Minute, nil, "docker", "run", "--rm", "--network", "host", im.plexus(), "health", "--url", url)
	if err == nil {
		t.Fatalf("plexus health trusted a certificate no root signed: %s", out)
	}
	if !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("plexus health without the CA: %v; want a verification against a root pool", err)
	}
	out = run(t, time.Minute, nil, "docker", "run", "--rm", "--network", "host", "-v", dir+":/certs:ro",
		"-e", "SSL_CERT_FILE=/certs/ca.pem", im.plexus(), "health", "--url", url)
	if !strings.Contains(out, `"healthy"`) {
		t.Fatalf("plexus health with SSL_CERT_FILE: %q", out)
	}
}

// tlsServer serves {"status":"healthy"} over TLS on 127.0.0.1 with a
// certificate from a fresh CA; it answers the server and the CA in PEM.
func tlsServer(t *testing.T) (*httptest.Server, []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "plexus deploy test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"healthy"}`))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: key}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
}
