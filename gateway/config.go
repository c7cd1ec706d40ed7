package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/plexushq/plexus/balance"
	"github.com/plexushq/plexus/internal/names"
	"github.com/plexushq/plexus/ratelimit"
)

// ErrInvalidConfig wraps every configuration error, so callers can tell a
// bad file from an I/O failure with errors.Is.
var ErrInvalidConfig = errors.New("invalid gateway configuration")

// Defaults applied when the configuration leaves a key out.
const (
	DefaultMaxBodyBytes        = 10 << 20
	DefaultTimeout             = 30 * time.Second
	DefaultRetryAttempts       = 2
	DefaultRetryBudget         = 0.2
	DefaultStrategy            = "p2c"
	DefaultUpstreamIdleTimeout = 4 * time.Second
)

// Config is the `gateway:` section of the configuration file
// (docs/gateway.md). The
// zero value is a working gateway: P2C balancing, 30s timeout, two retries
// within a 20% budget, the seed's breaker defaults, passive ejection,
// no rate limit and no CORS.
type Config struct {
	// TrustedProxies are CIDRs (or single addresses) whose X-Forwarded-*
	// headers are believed. Everyone else's are replaced.
	TrustedProxies []string `yaml:"trustedProxies"`
	// MaxBodyBytes bounds request bodies (413 beyond). Default 10 MiB; -1 = no limit.
	MaxBodyBytes int64 `yaml:"maxBodyBytes"`
	// Timeout bounds a request until the upstream's answer is complete
	// (streams — SSE, WebSocket — are bounded only until their headers). Default 30s.
	Timeout time.Duration `yaml:"timeout"`
	// Retries of idempotent requests to another instance.
	Retries *RetryConfig `yaml:"retries"`
	// Strategy picks instances: round-robin|least-connections|random|weighted|p2c|hash. Default p2c.
	Strategy string `yaml:"strategy"`
	// HashKey is what the hash strategy hashes: ip (default), header:NAME or cookie:NAME.
	HashKey string `yaml:"hashKey"`
	// Breaker configures the per-service and per-instance circuit breakers.
	Breaker *BreakerConfig `yaml:"breaker"`
	// Ejection configures passive health (local ejection after consecutive failures).
	Ejection *EjectionConfig `yaml:"ejection"`
	// RateLimit applies to every request unless a service or route has its own. Off when absent.
	RateLimit *RateLimitConfig `yaml:"rateLimit"`
	// CORS answers preflights and decorates answers. Off when absent.
	CORS *CORSConfig `yaml:"cors"`
	// AccessLog is a file for JSON access log lines, or "stdout"/"stderr". Off when empty.
	AccessLog string `yaml:"accessLog"`
	// UpstreamIdleTimeout closes idle upstream connections; keep it below the
	// backends' keep-alive timeout (Node.js: 5s). Default 4s.
	UpstreamIdleTimeout time.Duration `yaml:"upstreamIdleTimeout"`
	// Paths loosens the strict handling of request paths (encoded slashes,
	// backslashes, empty segments) for upstreams known to need it.
	Paths PathConfig `yaml:"paths"`
	// Services holds per-service overrides of the keys above.
	Services map[string]ServiceConfig `yaml:"services"`
	// Routes are matched before /api/{service}/.
	Routes []RouteConfig `yaml:"routes"`
}

// RetryConfig bounds retries.
type RetryConfig struct {
	// Attempts is the number of extra tries (0 = none). Default 2.
	Attempts *int `yaml:"attempts"`
	// Budget is the retries allowed per request over the last 10 seconds,
	// plus one per second (package retry: the same meaning as the service
	// client's RetryPolicy.Budget). Default 0.2.
	Budget *float64 `yaml:"budget"`
}

// BreakerConfig mirrors breaker.Config in the file's units.
type BreakerConfig struct {
	Disabled         bool          `yaml:"disabled"`
	FailureThreshold int           `yaml:"failureThreshold"`
	FailureRatio     float64       `yaml:"failureRatio"`
	MinRequests      int           `yaml:"minRequests"`
	Window           time.Duration `yaml:"window"`
	ResetTimeout     time.Duration `yaml:"resetTimeout"`
	HalfOpenRequests int           `yaml:"halfOpenRequests"`
}

// EjectionConfig configures passive health checking.
type EjectionConfig struct {
	// Disabled turns ejection off.
	Disabled bool `yaml:"disabled"`
	// ConsecutiveFailures eject an instance. Default 5.
	ConsecutiveFailures int `yaml:"consecutiveFailures"`
	// BaseTime is the first ejection's length; each repeated ejection doubles it. Default 10s.
	BaseTime time.Duration `yaml:"baseTime"`
	// MaxTime caps the ejection length. Default 5m.
	MaxTime time.Duration `yaml:"maxTime"`
	// MaxPercent of a service's instances may be ejected at once (at least
	// one when there are two or more, never all). Default 50.
	MaxPercent int `yaml:"maxPercent"`
}

// RateLimitConfig is a token bucket per key.
type RateLimitConfig struct {
	Requests int           `yaml:"requests"`
	Per      time.Duration `yaml:"per"`
	Burst    int           `yaml:"burst"`
	// Key is ip (default), ip+path, header:NAME or apikey.
	Key string `yaml:"key"`
}

// CORSConfig configures cross-origin answers.
type CORSConfig struct {
	AllowOrigins     []string      `yaml:"allowOrigins"`
	AllowMethods     []string      `yaml:"allowMethods"`
	AllowHeaders     []string      `yaml:"allowHeaders"`
	ExposeHeaders    []string      `yaml:"exposeHeaders"`
	AllowCredentials bool          `yaml:"allowCredentials"`
	MaxAge           time.Duration `yaml:"maxAge"`
}

// ServiceConfig overrides the gateway-wide keys for one service.
type ServiceConfig struct {
	Strategy     string           `yaml:"strategy"`
	HashKey      string           `yaml:"hashKey"`
	Timeout      time.Duration    `yaml:"timeout"`
	MaxBodyBytes int64            `yaml:"maxBodyBytes"`
	Retries      *RetryConfig     `yaml:"retries"`
	Breaker      *BreakerConfig   `yaml:"breaker"`
	Ejection     *EjectionConfig  `yaml:"ejection"`
	RateLimit    *RateLimitConfig `yaml:"rateLimit"`
}

// RouteConfig sends matching requests to a service.
type RouteConfig struct {
	// Name labels metrics and logs. Default: the path prefix.
	Name        string           `yaml:"name"`
	Match       RouteMatch       `yaml:"match"`
	Service     string           `yaml:"service"`
	StripPrefix bool             `yaml:"stripPrefix"`
	RateLimit   *RateLimitConfig `yaml:"rateLimit"`
	Timeout     time.Duration    `yaml:"timeout"`
	Strategy    string           `yaml:"strategy"`
}

// RouteMatch selects requests. Every given condition must hold.
type RouteMatch struct {
	// PathPrefix matches whole segments: /users matches /users and /users/1, not /usersx.
	PathPrefix string `yaml:"pathPrefix"`
	// Host matches the request host without port, case-insensitively; "*.example.com" matches subdomains.
	Host string `yaml:"host"`
	// Methods limits the route to these methods (any when empty).
	Methods []string `yaml:"methods"`
}

// ParseConfig strictly decodes the YAML of a gateway section (unknown keys
// are an error) and validates it.
func ParseConfig(b []byte) (Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

var (
	tokenRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
	hostRE  = regexp.MustCompile(`^(\*\.)?[a-zA-Z0-9]([a-zA-Z0-9.-]{0,252})$`)
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}

// Validate reports the first problem of the configuration, naming the key.
func (c *Config) Validate() error {
	for i, p := range c.TrustedProxies {
		if _, err := parsePrefix(p); err != nil {
			return invalid("trustedProxies[%d] %q: want a CIDR or an IP address", i, p)
		}
	}
	if c.MaxBodyBytes < -1 {
		return invalid("maxBodyBytes %d: want -1 (no limit), 0 (default) or a positive size", c.MaxBodyBytes)
	}
	if c.Timeout < 0 || c.UpstreamIdleTimeout < 0 {
		return invalid("timeout and upstreamIdleTimeout must not be negative")
	}
	if err := validateCommon("", c.Strategy, c.HashKey, c.Retries, c.Breaker, c.Ejection, c.RateLimit); err != nil {
		return err
	}
	if err := c.CORS.validate(); err != nil {
		return err
	}
	if len(c.Services) > 10000 {
		return invalid("services: at most 10000 entries")
	}
	for name, s := range c.Services {
		if !names.Valid(name) {
			return invalid("services: name %q: want %s", name, names.Pattern)
		}
		if s.Timeout < 0 || s.MaxBodyBytes < -1 {
			return invalid("services.%s: negative timeout or maxBodyBytes", name)
		}
		if err := validateCommon("services."+name+".", s.Strategy, s.HashKey, s.Retries, s.Breaker, s.Ejection, s.RateLimit); err != nil {
			return err
		}
	}
	if len(c.Routes) > 1000 {
		return invalid("routes: at most 1000 entries")
	}
	for i := range c.Routes {
		if err := c.Routes[i].validate(i); err != nil {
			return err
		}
	}
	return nil
}

func validateCommon(at, strategy, hashKey string, r *RetryConfig, b *BreakerConfig, e *EjectionConfig, rl *RateLimitConfig) error {
	if strategy != "" {
		if _, err := balance.New(balance.Strategy(strategy)); err != nil {
			return invalid("%sstrategy %q: want round-robin, least-connections, random, weighted, p2c or hash", at, strategy)
		}
	}
	if hashKey != "" {
		if _, err := parseHashKey(hashKey); err != nil {
			return invalid("%shashKey %q: want ip, header:NAME or cookie:NAME", at, hashKey)
		}
	}
	if r != nil {
		if r.Attempts != nil && (*r.Attempts < 0 || *r.Attempts > 10) {
			return invalid("%sretries.attempts %d: want 0 to 10", at, *r.Attempts)
		}
		if r.Budget != nil && !(*r.Budget >= 0 && *r.Budget <= 1) {
			return invalid("%sretries.budget %v: want a fraction from 0 to 1", at, *r.Budget)
		}
	}
	if b != nil {
		bc, _ := breakerConfig(b)
		if err := bc.Validate(); err != nil {
			return invalid("%sbreaker: %v", at, err)
		}
		if b.FailureThreshold < 0 || b.MinRequests < 0 || b.HalfOpenRequests < 0 || b.Window < 0 || b.ResetTimeout < 0 ||
			!(b.FailureRatio >= 0 && b.FailureRatio <= 1) {
			return invalid("%sbreaker: negative values or failureRatio outside 0..1", at)
		}
	}
	if e != nil {
		if e.ConsecutiveFailures < 0 || e.BaseTime < 0 || e.MaxTime < 0 || e.MaxPercent < 0 || e.MaxPercent > 100 {
			return invalid("%sejection: negative values or maxPercent above 100", at)
		}
	}
	return rl.validate(at + "rateLimit")
}

func (rl *RateLimitConfig) validate(at string) error {
	if rl == nil {
		return nil
	}
	if rl.Requests <= 0 || rl.Per <= 0 || rl.Burst < 0 {
		return invalid("%s: want requests > 0 and per > 0 (got %d per %s)", at, rl.Requests, time.Duration(rl.Per))
	}
	if _, err := ratelimit.KeyFunc(rl.keySpec()); err != nil {
		return invalid("%s.key %q: want ip, ip+path, header:NAME or apikey", at, rl.Key)
	}
	return nil
}

func (rl *RateLimitConfig) keySpec() string {
	if rl.Key == "" {
		return "ip"
	}
	return rl.Key
}

func (c *CORSConfig) validate() error {
	if c == nil {
		return nil
	}
	if len(c.AllowOrigins) == 0 {
		return invalid("cors.allowOrigins: give at least one origin (or \"*\")")
	}
	for _, o := range c.AllowOrigins {
		if o == "*" {
			if c.AllowCredentials {
				return invalid("cors: allowOrigins \"*\" with allowCredentials is refused by browsers and unsafe; list the origins")
			}
			continue
		}
		if !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") || strings.HasSuffix(o, "/") ||
			strings.ContainsAny(o, " ,\r\n") {
			return invalid("cors.allowOrigins %q: want scheme://host[:port] without a path, or \"*\"", o)
		}
	}
	for _, m := range c.AllowMethods {
		if !tokenRE.MatchString(m) {
			return invalid("cors.allowMethods %q: not an HTTP method", m)
		}
	}
	for _, h := range append(append([]string(nil), c.AllowHeaders...), c.ExposeHeaders...) {
		if !tokenRE.MatchString(h) {
			return invalid("cors headers %q: not a header name", h)
		}
	}
	if c.MaxAge < 0 {
		return invalid("cors.maxAge must not be negative")
	}
	return nil
}

func (rc *RouteConfig) validate(i int) error {
	at := fmt.Sprintf("routes[%d]", i)
	p := rc.Match.PathPrefix
	if p == "" && rc.Match.Host == "" {
		return invalid("%s.match: give a pathPrefix or a host", at)
	}
	if p != "" && (!strings.HasPrefix(p, "/") || hasDotSegment(p) || strings.ContainsAny(p, "?#%\\ \t\r\n")) {
		return invalid("%s.match.pathPrefix %q: want an absolute path without . or .. segments, query or escapes", at, p)
	}
	if h := rc.Match.Host; h != "" && !hostRE.MatchString(h) {
		return invalid("%s.match.host %q: want a host name, optionally *.domain", at, h)
	}
	for _, m := range rc.Match.Methods {
		if !tokenRE.MatchString(m) || strings.ToUpper(m) != m {
			return invalid("%s.match.methods %q: want an upper-case HTTP method", at, m)
		}
	}
	if !names.Valid(rc.Service) {
		return invalid("%s.service %q: want a service name", at, rc.Service)
	}
	if rc.Timeout < 0 || len(rc.Name) > 128 || strings.ContainsAny(rc.Name, "\r\n") {
		return invalid("%s: negative timeout or bad name", at)
	}
	if rc.Strategy != "" {
		if _, err := balance.New(balance.Strategy(rc.Strategy)); err != nil {
			return invalid("%s.strategy %q: unknown strategy", at, rc.Strategy)
		}
	}
	return rc.RateLimit.validate(at + ".rateLimit")
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}
