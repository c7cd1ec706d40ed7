package gateway

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/plexushq/plexus/balance"
	"github.com/plexushq/plexus/breaker"
	"github.com/plexushq/plexus/internal/h1"
	"github.com/plexushq/plexus/ratelimit"
)

// compiled is an immutable, ready-to-serve form of a Config. The gateway
// holds it in an atomic.Pointer; a reload swaps the pointer, so requests in
// flight finish with the configuration they started with.
type compiled struct {
	src       Config
	trust     trust
	defaults  *settings
	services  map[string]*settings
	routes    []*route
	cors      *cors
	access    io.Writer // nil: no access log
	transport *h1.Client
	limiters  map[string]*limiter // by scope+config, to keep buckets across reloads
}

// settings are the effective values for one service.
type settings struct {
	strategy balance.Strategy
	hashKey  hashKey
	timeout  time.Duration
	maxBody  int64 // -1: no limit
	attempts int
	budget   float64
	breaker  breaker.Config
	brOff    bool
	eject    ejectConfig
	limiter  *limiter
}

type ejectConfig struct {
	off        bool
	threshold  int32
	base, max  time.Duration
	maxPercent int
}

// limiter is a rate limiter with its key function and its identity.
type limiter struct {
	sig   string
	l     *ratelimit.Limiter
	key   func(r *http.Request, clientIP string) string
	limit string // RateLimit-Limit value
}

// compile turns a validated Config into its serving form. prev (may be nil)
// lends its rate limiters and transport when their settings did not change.
func (g *Gateway) compile(cfg Config, prev *compiled) (*compiled, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &compiled{src: cfg, services: make(map[string]*settings, len(cfg.Services)), limiters: map[string]*limiter{}}
	for _, p := range cfg.TrustedProxies {
		pf, _ := parsePrefix(p)
		c.trust.nets = append(c.trust.nets, pf)
	}
	var err error
	if c.defaults, err = g.settingsFor(c, prev, "", cfg, ServiceConfig{}); err != nil {
		return nil, err
	}
	for name, sc := range cfg.Services {
		if c.services[name], err = g.settingsFor(c, prev, "svc:"+name, cfg, sc); err != nil {
			return nil, err
		}
	}
	c.routes = compileRoutes(cfg.Routes, func(i int, rc *RouteConfig) *limiter {
		if rc.RateLimit == nil {
			return nil
		}
		return g.limiterFor(c, prev, fmt.Sprintf("route:%d", i), rc.RateLimit)
	})
	c.cors = newCORS(cfg.CORS)
	if c.access, err = g.accessLogger(cfg.AccessLog); err != nil {
		return nil, fmt.Errorf("%w: accessLog: %w", ErrInvalidConfig, err)
	}
	c.transport = g.transportFor(cfg, prev)
	return c, nil
}

// settingsFor merges a service's overrides over the gateway-wide keys.
func (g *Gateway) settingsFor(c, prev *compiled, scope string, cfg Config, sc ServiceConfig) (*settings, error) {
	s := &settings{strategy: DefaultStrategy, timeout: DefaultTimeout, maxBody: DefaultMaxBodyBytes,
		attempts: DefaultRetryAttempts, budget: DefaultRetryBudget}
	pick(&s.strategy, balance.Strategy(cfg.Strategy), balance.Strategy(sc.Strategy))
	pick(&s.timeout, cfg.Timeout, sc.Timeout)
	pick(&s.maxBody, cfg.MaxBodyBytes, sc.MaxBodyBytes)
	for _, r := range []*RetryConfig{cfg.Retries, sc.Retries} {
		if r != nil && r.Attempts != nil {
			s.attempts = *r.Attempts
		}
		if r != nil && r.Budget != nil {
			s.budget = *r.Budget
		}
	}
	var err error
	hk := cfg.HashKey
	pick(&hk, "", sc.HashKey)
	if s.hashKey, err = parseHashKey(hk); err != nil {
		return nil, err
	}
	s.breaker, s.brOff = breakerConfig(cfg.Breaker, sc.Breaker)
	s.eject = ejectionConfig(cfg.Ejection, sc.Ejection)
	rl, rscope := cfg.RateLimit, "global"
	if sc.RateLimit != nil {
		rl, rscope = sc.RateLimit, scope
	}
	if rl != nil {
		s.limiter = g.limiterFor(c, prev, rscope, rl)
	}
	return s, nil
}

// pick sets *dst to the last non-zero value of vs.
func pick[T comparable](dst *T, vs ...T) {
	var zero T
	for _, v := range vs {
		if v != zero {
			*dst = v
		}
	}
}

func breakerConfig(bs ...*BreakerConfig) (breaker.Config, bool) {
	cfg := breaker.Config{FailureThreshold: 5, FailureRatio: 0.5, MinRequests: 20, Window: 10 * time.Second,
		ResetTimeout: 60 * time.Second, HalfOpenRequests: 3}
	off := false
	for _, b := range bs {
		if b == nil {
			continue
		}
		off = b.Disabled
		pick(&cfg.FailureThreshold, b.FailureThreshold)
		pick(&cfg.FailureRatio, b.FailureRatio)
		pick(&cfg.MinRequests, b.MinRequests)
		pick(&cfg.Window, b.Window)
		pick(&cfg.ResetTimeout, b.ResetTimeout)
		pick(&cfg.HalfOpenRequests, b.HalfOpenRequests)
	}
	return cfg, off
}

func ejectionConfig(es ...*EjectionConfig) ejectConfig {
	e := ejectConfig{threshold: 5, base: 10 * time.Second, max: 5 * time.Minute, maxPercent: 50}
	for _, x := range es {
		if x == nil {
			continue
		}
		e.off = x.Disabled
		pick(&e.threshold, int32(x.ConsecutiveFailures))
		pick(&e.base, x.BaseTime)
		pick(&e.max, x.MaxTime)
		pick(&e.maxPercent, x.MaxPercent)
	}
	if e.max < e.base {
		e.max = e.base
	}
	return e
}

// limiterFor returns the previous configuration's limiter for the same
// scope and settings (keeping its buckets), or a new one.
func (g *Gateway) limiterFor(c, prev *compiled, scope string, rl *RateLimitConfig) *limiter {
	sig := fmt.Sprintf("%s|%d|%s|%d|%s", scope, rl.Requests, rl.Per, rl.Burst, rl.keySpec())
	if l, ok := c.limiters[sig]; ok {
		return l
	}
	if prev != nil {
		if l, ok := prev.limiters[sig]; ok {
			c.limiters[sig] = l
			return l
		}
	}
	key, _ := ratelimit.KeyFunc(rl.keySpec())
	burst := rl.Burst
	if burst == 0 {
		burst = rl.Requests
	}
	var opts []ratelimit.Option
	if g.opts.Clock != nil {
		opts = append(opts, ratelimit.WithClock(g.opts.Clock))
	}
	l := &limiter{sig: sig, key: key, limit: fmt.Sprint(burst),
		l: ratelimit.New(ratelimit.Config{Requests: rl.Requests, Per: rl.Per, Burst: rl.Burst}, opts...)}
	c.limiters[sig] = l
	return l
}

// transportFor reuses the previous transport (and its warm connections)
// unless the idle timeout changed.
func (g *Gateway) transportFor(cfg Config, prev *compiled) *h1.Client {
	idle := cfg.UpstreamIdleTimeout
	if idle == 0 {
		idle = DefaultUpstreamIdleTimeout
	}
	if prev != nil && prev.transport.IdleTimeout() == idle {
		return prev.transport
	}
	return newTransport(idle, g.opts.UpstreamTLS)
}

// newTransport is the upstream client, tuned for a proxy: up to 1024 idle
// connections per instance, an idle timeout below common backend
// keep-alive timeouts (Node.js closes idle sockets after 5s; a request
// sent on a socket the backend is closing fails), 5s to connect and to
// shake hands, HTTP/1.1 to instances (upgrades need it), bodies passed
// unchanged.
func newTransport(idle time.Duration, tlsCfg *tls.Config) *h1.Client {
	return h1.New(h1.Config{IdleTimeout: idle, TLS: tlsCfg, MaxIdlePerHost: 1024,
		DialTimeout: 5 * time.Second, TLSHandshakeTimeout: 5 * time.Second, MaxHeaderBytes: 1 << 20})
}

// hashKey extracts the consistent-hashing key of a request.
type hashKey struct {
	kind byte // 'i' ip, 'h' header, 'c' cookie
	name string
}

func parseHashKey(s string) (hashKey, error) {
	switch {
	case s == "" || s == "ip":
		return hashKey{kind: 'i'}, nil
	case strings.HasPrefix(s, "header:") && tokenRE.MatchString(s[7:]):
		return hashKey{kind: 'h', name: http.CanonicalHeaderKey(s[7:])}, nil
	case strings.HasPrefix(s, "cookie:") && tokenRE.MatchString(s[7:]):
		return hashKey{kind: 'c', name: s[7:]}, nil
	}
	return hashKey{}, invalid("hashKey %q: want ip, header:NAME or cookie:NAME", s)
}

func (k hashKey) of(r *http.Request, clientIP string) uint64 {
	switch k.kind {
	case 'h':
		if v := r.Header[k.name]; len(v) > 0 {
			return balance.HashString(v[0])
		}
	case 'c':
		if ck, err := r.Cookie(k.name); err == nil {
			return balance.HashString(ck.Value)
		}
	}
	return balance.HashString(clientIP)
}

// settingsOf returns the service's settings.
func (c *compiled) settingsOf(service string) *settings {
	if s, ok := c.services[service]; ok {
		return s
	}
	return c.defaults
}
