package registry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/plexushq/plexus/registry"
)

// A program keeps itself registered while it runs and drains before it
// stops.
func ExampleRegistrar() {
	ctx := context.Background()
	cl, err := registry.NewClient("http://127.0.0.1:3100", "plx_token", registry.ClientConfig{})
	if err != nil {
		panic(err)
	}
	defer cl.Close()
	r, err := cl.NewRegistrar("user-service", "user-1", registry.Registration{
		URL: "http://10.0.0.7:3001",
		TTL: 15 * time.Second,
	}, registry.RegistrarConfig{})
	if err != nil {
		panic(err)
	}
	if err := r.Start(ctx); err != nil {
		fmt.Println("register:", err)
		return
	}
	// ... serve ...
	_ = r.Drain(ctx) // no new traffic; wait for in-flight requests, then:
	_ = r.Stop(ctx)  // stop heartbeats and deregister
}

// A service outside a node discovers instances from a local cache fed by
// the admin API's watch stream.
func ExampleNewHTTPCache() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl, _ := registry.NewClient("http://127.0.0.1:3100", "plx_token", registry.ClientConfig{})
	defer cl.Close()
	cache := registry.NewHTTPCache(cl, registry.CacheConfig{})
	if err := cache.Start(ctx); err != nil {
		fmt.Println("no registry:", err)
		return
	}
	defer cache.Stop(context.Background())
	for {
		if s := cache.Service("order-service"); s != nil {
			fmt.Println(len(s.Healthy), "healthy instances, generation", s.Gen)
		}
		select {
		case <-cache.Changed():
		case <-ctx.Done():
			return
		}
	}
}

// A registration is plain Go values: durations are time.Duration (on the
// wire, duration strings), defaults where a field is left zero.
func ExampleRegistration() {
	weight := 3
	reg := registry.Registration{
		URL:    "http://10.0.0.7:3001",
		Weight: &weight,
		TTL:    time.Minute,
		Check:  &registry.Check{Path: "/healthz", Interval: 5 * time.Second, Timeout: time.Second},
	}
	b, _ := json.Marshal(reg)
	fmt.Println(string(b))
	inst, err := reg.Normalize("users", "users-1")
	if err != nil {
		panic(err)
	}
	fmt.Println(inst.TTL, inst.Check.Interval, inst.Check.Rise)
	// Output:
	// {"url":"http://10.0.0.7:3001","weight":3,"ttl":"1m0s","check":{"path":"/healthz","interval":"5s","timeout":"1s"}}
	// 1m0s 5s 2
}
