package registry

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/plexushq/plexus/internal/names"
)

// Limits on what one registration may carry. They keep every stored value
// small (a few KiB at most) so the bucket and the watch stay fast.
const (
	MaxURLLen        = 2048
	MaxTags          = 32
	MaxTagLen        = 64
	MaxMetadata      = 32
	MaxMetaKeyLen    = 64
	MaxMetaValueLen  = 512
	MaxVersionLen    = 64
	MaxZoneLen       = 64
	MaxCheckPathLen  = 512
	MaxCheckOutput   = 512
	MinWeight        = 1
	MaxWeight        = 1000
	MinTTL           = time.Second
	MaxTTL           = 24 * time.Hour
	DefaultTTL       = 30 * time.Second
	MinCheckInterval = 100 * time.Millisecond
	MaxCheckInterval = time.Hour
	DefaultInterval  = 10 * time.Second
	DefaultTimeout   = 5 * time.Second
	DefaultRiseFall  = 2
	MaxRiseFall      = 100
	DefaultCheckPath = "/health"
	// MaxBodyBytes bounds a registration request body.
	MaxBodyBytes = 64 << 10
)

var (
	// idRe keeps instance ids one key token: no dots, so the key
	// "<service>.<id>" splits unambiguously at its last dot.
	idRe      = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_-]{0,127}$`)
	metaKeyRe = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._/-]{0,63}$`)
)

// ValidateService checks a service name: the rule of docs/openapi.yaml, and no empty key
// token (a trailing dot or two dots in a row) since the name is part of a
// key of the engine's bucket.
func ValidateService(name string) error {
	if !names.Valid(name) {
		return &NameError{Kind: "service", Name: clip(name), Why: "want 1-128 of [a-zA-Z0-9._-], starting with a letter or digit"}
	}
	if strings.HasSuffix(name, ".") || strings.Contains(name, "..") {
		return &NameError{Kind: "service", Name: name, Why: "must not end with a dot or contain two dots in a row"}
	}
	return nil
}

// ValidateID checks an instance id: 1-128 of [a-zA-Z0-9_-], starting with
// a letter or digit.
func ValidateID(id string) error {
	if !idRe.MatchString(id) {
		return &NameError{Kind: "instance id", Name: clip(id), Why: "want 1-128 of [a-zA-Z0-9_-], starting with a letter or digit"}
	}
	return nil
}

func clip(s string) string {
	if len(s) > 140 {
		return s[:140] + "…"
	}
	return s
}

// Registration is the body of PUT /v1/services/{service}/instances/{id}:
// what an instance says about itself. Zero values take the defaults.
type Registration struct {
	// URL is the instance's absolute http or https base URL.
	URL string `json:"url"`
	// Weight for weighted balancing, 1-1000. Default 1.
	Weight *int `json:"weight,omitempty"`
	// Version and Zone are free labels (at most 64 printable characters).
	Version string `json:"version,omitempty"`
	Zone    string `json:"zone,omitempty"`
	// Tags: at most 32, each 1-64 printable characters.
	Tags []string `json:"tags,omitempty"`
	// Metadata: at most 32 entries; keys [a-zA-Z0-9._/-] up to 64, values up to 512.
	Metadata map[string]string `json:"metadata,omitempty"`
	// TTL is the lease, 1s-24h (whole seconds are used by the engine; a
	// fraction is rounded up). Default 30s.
	TTL time.Duration `json:"ttl,omitempty"`
	// Check configures the active health check; absent fields take defaults.
	Check *Check `json:"check,omitempty"`
}

// Normalize validates r for instance id of service and returns the
// instance it describes, defaults filled in, not yet stamped with times
// or status. It never modifies r.
func (r *Registration) Normalize(service, id string) (*Instance, error) {
	if err := ValidateService(service); err != nil {
		return nil, err
	}
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	inst := &Instance{ID: id, Service: service, Weight: 1, Version: r.Version, Zone: r.Zone}
	if err := validateURL(r.URL); err != nil {
		return nil, err
	}
	inst.URL = r.URL
	if r.Weight != nil {
		if *r.Weight < MinWeight || *r.Weight > MaxWeight {
			return nil, invalid("weight", "%d is outside %d-%d", *r.Weight, MinWeight, MaxWeight)
		}
		inst.Weight = *r.Weight
	}
	if err := validateLabel("version", r.Version, MaxVersionLen); err != nil {
		return nil, err
	}
	if err := validateLabel("zone", r.Zone, MaxZoneLen); err != nil {
		return nil, err
	}
	tags, err := validateTags(r.Tags)
	if err != nil {
		return nil, err
	}
	inst.Tags = tags
	if inst.Metadata, err = validateMetadata(r.Metadata); err != nil {
		return nil, err
	}
	ttl := r.TTL
	switch {
	case ttl == 0:
		ttl = DefaultTTL
	case ttl < MinTTL || ttl > MaxTTL:
		return nil, invalid("ttl", "%s is outside %s-%s", ttl, MinTTL, MaxTTL)
	}
	inst.TTL = ttl
	var c Check
	if r.Check != nil {
		c = *r.Check
	}
	if inst.Check, err = c.normalize(); err != nil {
		return nil, err
	}
	return inst, nil
}

func validateURL(s string) error {
	if s == "" {
		return invalid("url", "is required (an absolute http or https URL)")
	}
	if len(s) > MaxURLLen {
		return invalid("url", "longer than %d bytes", MaxURLLen)
	}
	u, err := url.Parse(s)
	if err != nil {
		return invalid("url", "%q does not parse", clip(s))
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return invalid("url", "%q: scheme must be http or https", clip(s))
	case u.Host == "" || u.Hostname() == "" || u.Opaque != "":
		return invalid("url", "%q: must be absolute with a host", clip(s))
	case u.User != nil:
		return invalid("url", "%q: must not carry credentials (they would be listed)", clip(s))
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.ContainsAny(s, "#"):
		return invalid("url", "%q: must not have a query or fragment", clip(s))
	}
	if p := u.Port(); p != "" {
		var n int
		if _, err := fmt.Sscanf(p, "%d", &n); err != nil || n < 1 || n > 65535 {
			return invalid("url", "%q: bad port", clip(s))
		}
	}
	return nil
}

// validateLabel accepts up to max printable characters without spaces at
// either end.
func validateLabel(field, s string, max int) error {
	if s == "" {
		return nil
	}
	if len(s) > max {
		return invalid(field, "longer than %d bytes", max)
	}
	if !printable(s) || strings.TrimSpace(s) != s {
		return invalid(field, "must be printable UTF-8 without control characters or outer spaces")
	}
	return nil
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

func validateTags(tags []string) ([]string, error) {
	if len(tags) == 0 {
		return nil, nil
	}
	if len(tags) > MaxTags {
		return nil, invalid("tags", "%d tags; at most %d", len(tags), MaxTags)
	}
	out := make([]string, 0, len(tags))
	seen := make(map[string]bool, len(tags))
	for i, t := range tags {
		field := fmt.Sprintf("tags[%d]", i)
		if t == "" {
			return nil, invalid(field, "is empty")
		}
		if err := validateLabel(field, t, MaxTagLen); err != nil {
			return nil, err
		}
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out, nil
}

func validateMetadata(m map[string]string) (map[string]string, error) {
	if len(m) == 0 {
		return nil, nil
	}
	if len(m) > MaxMetadata {
		return nil, invalid("metadata", "%d entries; at most %d", len(m), MaxMetadata)
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if !metaKeyRe.MatchString(k) {
			return nil, invalid("metadata", "key %q: want 1-64 of [a-zA-Z0-9._/-]", clip(k))
		}
		if len(v) > MaxMetaValueLen {
			return nil, invalid("metadata."+k, "longer than %d bytes", MaxMetaValueLen)
		}
		if !utf8.ValidString(v) || strings.ContainsFunc(v, unicode.IsControl) {
			return nil, invalid("metadata."+k, "must be UTF-8 without control characters")
		}
		out[k] = v
	}
	return out, nil
}

// normalize validates a check and fills in its defaults.
func (c Check) normalize() (Check, error) {
	if c.Path == "" {
		c.Path = DefaultCheckPath
	}
	if len(c.Path) > MaxCheckPathLen {
		return c, invalid("check.path", "longer than %d bytes", MaxCheckPathLen)
	}
	if !strings.HasPrefix(c.Path, "/") || strings.ContainsFunc(c.Path, func(r rune) bool {
		return r <= ' ' || r == 0x7f || r == '#'
	}) {
		return c, invalid("check.path", "%q: want an absolute path such as /health, no spaces or fragment", clip(c.Path))
	}
	if _, err := url.ParseRequestURI(c.Path); err != nil {
		return c, invalid("check.path", "%q does not parse", clip(c.Path))
	}
	iv, to := c.Interval, c.Timeout
	switch {
	case iv == 0:
		iv = DefaultInterval
	case iv < MinCheckInterval || iv > MaxCheckInterval:
		return c, invalid("check.interval", "%s is outside %s-%s", iv, MinCheckInterval, MaxCheckInterval)
	}
	switch {
	case to == 0:
		to = min(DefaultTimeout, iv)
	case to < 0:
		return c, invalid("check.timeout", "%s is negative", to)
	case to > iv:
		return c, invalid("check.timeout", "%s is longer than the interval %s", to, iv)
	}
	c.Interval, c.Timeout = iv, to
	for _, f := range []struct {
		name string
		v    *int
	}{{"check.rise", &c.Rise}, {"check.fall", &c.Fall}} {
		switch {
		case *f.v == 0:
			*f.v = DefaultRiseFall
		case *f.v < 1 || *f.v > MaxRiseFall:
			return c, invalid(f.name, "%d is outside 1-%d", *f.v, MaxRiseFall)
		}
	}
	return c, nil
}

// ValidateStatus accepts the statuses a caller may set: draining and
// healthy (unhealthy is the checker's to decide).
func ValidateStatus(s Status) error {
	if s != StatusDraining && s != StatusHealthy {
		return invalid("status", "%q: want %q or %q", s, StatusDraining, StatusHealthy)
	}
	return nil
}
