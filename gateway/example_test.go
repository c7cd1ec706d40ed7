package gateway_test

import (
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/plexushq/plexus/gateway"
)

// The gateway's configuration is plain Go values (time.Duration for
// durations) or the gateway: section of the node's YAML file, where
// durations are strings such as "5s".
func ExampleConfig() {
	attempts, budget := 1, 0.1
	cfg := gateway.Config{
		Timeout: 5 * time.Second,
		Retries: &gateway.RetryConfig{Attempts: &attempts, Budget: &budget},
		Breaker: &gateway.BreakerConfig{FailureThreshold: 3, ResetTimeout: 30 * time.Second},
		Services: map[string]gateway.ServiceConfig{
			"reports": {Timeout: time.Minute},
		},
	}
	fmt.Println(cfg.Validate())

	var fromFile gateway.Config
	err := yaml.Unmarshal([]byte("timeout: 5s\nrateLimit: {requests: 100, per: 1m}\n"), &fromFile)
	fmt.Println(err, fromFile.Timeout, fromFile.RateLimit.Per)
	// Output:
	// <nil>
	// <nil> 5s 1m0s
}
