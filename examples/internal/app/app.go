// Package app holds what the three example services share: their
// configuration (flags and PLEXUS_* environment variables), the
// service-helper settings built from it, and JSON helpers.
package app

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/plexushq/plexus/service"
)

// Version is the examples' version, stamped at build time with
// -ldflags "-X github.com/plexushq/plexus/examples/internal/app.Version=…"
// (scripts/image.sh); it is registered with each instance.
var Version = "dev"

// Config configures one example service.
type Config struct {
	// Addr to listen on (--addr, ADDR).
	Addr string
	// AdminURL of a Plexus node (--admin-url, PLEXUS_ADMIN_URL).
	AdminURL string
	// Token is the admin token (--admin-token, PLEXUS_ADMIN_TOKEN).
	Token string
	// ID of the instance; empty: <name>-<hostname>-<pid>.
	ID string
	// AdvertiseURL other services use (--advertise-url, ADVERTISE_URL);
	// empty: http://<listen address>. "hostname" means
	// http://<os.Hostname()>:<port of Addr>, for containers.
	AdvertiseURL string
	// DrainDelay after SIGTERM before the listener closes; 0: the helper's 2s.
	DrainDelay time.Duration
	// Logger; nil: JSON lines on stderr.
	Logger *slog.Logger
	// OnReady is called with the advertised URL once the instance serves
	// and is registered.
	OnReady func(url string)
}

// Flags parses the command line (and the environment for unset flags)
// into a Config; extra lets a service add its own flags first.
func Flags(defaultAddr string, extra func(fs *flag.FlagSet)) Config {
	var c Config
	fs := flag.CommandLine
	fs.StringVar(&c.Addr, "addr", env("ADDR", defaultAddr), "listen address")
	fs.StringVar(&c.AdminURL, "admin-url", env("PLEXUS_ADMIN_URL", "http://127.0.0.1:3100"), "Plexus admin URL (PLEXUS_ADMIN_URL)")
	fs.StringVar(&c.Token, "admin-token", os.Getenv("PLEXUS_ADMIN_TOKEN"), "Plexus admin token (PLEXUS_ADMIN_TOKEN)")
	fs.StringVar(&c.ID, "id", os.Getenv("INSTANCE_ID"), "instance id (INSTANCE_ID; default <name>-<host>-<pid>)")
	fs.StringVar(&c.AdvertiseURL, "advertise-url", os.Getenv("ADVERTISE_URL"), `URL others reach this instance at (ADVERTISE_URL; "hostname": http://<hostname>:<port>)`)
	health := fs.Bool("healthcheck", false, "probe http://127.0.0.1:<port>/health, exit 0 if healthy (for container HEALTHCHECK)")
	if extra != nil {
		extra(fs)
	}
	flag.Parse()
	if *health {
		os.Exit(probe(c.Addr))
	}
	return c
}

// probe answers 0 when the instance listening on addr's port is healthy.
func probe(addr string) int {
	port := addr[strings.LastIndex(addr, ":")+1:]
	hc := &http.Client{Timeout: 3 * time.Second}
	resp, err := hc.Get("http://127.0.0.1:" + port + "/health")
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "healthcheck:", resp.Status)
		return 1
	}
	return 0
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Service returns the service helper's configuration for name.
func (c Config) Service(name string) (service.Config, error) {
	adv := c.AdvertiseURL
	if adv == "hostname" {
		host, err := os.Hostname()
		if err != nil {
			return service.Config{}, err
		}
		port := c.Addr[strings.LastIndex(c.Addr, ":")+1:]
		if port == "" || port == "0" {
			return service.Config{}, fmt.Errorf("advertise-url hostname needs a fixed port in --addr, not %q", c.Addr)
		}
		adv = "http://" + host + ":" + port
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("service", name)
	}
	return service.Config{Name: name, ID: c.ID, Addr: c.Addr, AdvertiseURL: adv, RegistryURL: c.AdminURL,
		Token: c.Token, Version: Version, DrainDelay: c.DrainDelay, Logger: log, OnReady: c.OnReady}, nil
}

// InstanceHeader names the instance that answered a request; the
// container test counts answers per replica with it.
const InstanceHeader = "X-Instance-Id"

// Tag sets InstanceHeader to id on every answer of h.
func Tag(id string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(InstanceHeader, id)
		h.ServeHTTP(w, r)
	})
}

// NewID is a random 12-hex-digit id (users, orders).
func NewID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// WriteJSON answers v with status code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Problem answers an RFC 9457 problem.
func Problem(w http.ResponseWriter, code int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"title": http.StatusText(code), "status": code, "detail": detail})
}

// ReadJSON decodes a small JSON body strictly.
func ReadJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
