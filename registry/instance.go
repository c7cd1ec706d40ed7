// Package registry owns service discovery: instances stored in the engine's
// key-value bucket with leases renewed by heartbeats, active health checks,
// draining, a change feed (watch), the registry's HTTP API, and a Go client
// with a watch-fed local cache for the gateway and the service client.
package registry

import (
	"time"
)

// Status is an instance's health as the registry sees it.
type Status string

// Instance statuses. A new instance starts healthy (docs/registry.md);
// checks move it from there. Draining instances get no new traffic.
const (
	StatusHealthy   Status = "healthy"
	StatusUnhealthy Status = "unhealthy"
	StatusDraining  Status = "draining"
)

// Check configures the active health check of an instance.
type Check struct {
	// Path is requested with GET on the instance URL. Default "/health".
	Path string `json:"path,omitempty"`
	// Interval between checks. Default 10s, at least 100ms.
	Interval time.Duration `json:"interval,omitempty"`
	// Timeout of one check. Default 5s.
	Timeout time.Duration `json:"timeout,omitempty"`
	// Rise consecutive passes make an unhealthy instance healthy. Default 2.
	Rise int `json:"rise,omitempty"`
	// Fall consecutive failures make a healthy instance unhealthy. Default 2.
	Fall int `json:"fall,omitempty"`
}

// Instance is one registered instance of a service.
type Instance struct {
	ID       string            `json:"id"`
	Service  string            `json:"service"`
	URL      string            `json:"url"`
	Weight   int               `json:"weight"`
	Version  string            `json:"version,omitempty"`
	Zone     string            `json:"zone,omitempty"`
	Tags     []string          `json:"tags,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
	// TTL is the lease: without a heartbeat for this long the instance
	// disappears by itself. Default 30s.
	TTL           time.Duration `json:"ttl"`
	Check         Check         `json:"check"`
	Status        Status        `json:"status"`
	RegisteredAt  time.Time     `json:"registeredAt"`
	LastHeartbeat time.Time     `json:"lastHeartbeat"`
	LastCheck     *time.Time    `json:"lastCheck,omitempty"`
	CheckOutput   string        `json:"checkOutput,omitempty"`
	// Checker names the checker (one per node with the checker role)
	// that runs this instance's active checks, since CheckerSince; the
	// others leave the instance alone while it reports in time.
	Checker      string     `json:"checker,omitempty"`
	CheckerSince *time.Time `json:"checkerSince,omitempty"`
	ExpiresAt    time.Time  `json:"expiresAt"`
	// CheckPasses and CheckFailures count consecutive check results for the
	// rise/fall thresholds; they live in the store so that any checker node
	// continues where another left off.
	CheckPasses   int `json:"checkPasses,omitempty"`
	CheckFailures int `json:"checkFailures,omitempty"`
	// Revision is the engine's revision of this value (not stored in it);
	// it grows with every change of any instance.
	Revision uint64 `json:"revision,omitempty"`
}

// ServiceSnapshot is an immutable view of one service's instances, as the
// local cache holds it. Readers must not modify it or its instances.
type ServiceSnapshot struct {
	Name string
	// Instances holds every instance, sorted by ID.
	Instances []*Instance
	// Healthy holds the instances with status healthy, sorted by ID.
	Healthy []*Instance
	// Gen changes whenever this service's instances change, so users can
	// rebuild derived state (balancers, parsed URLs) only when needed.
	Gen uint64
}
