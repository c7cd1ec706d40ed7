package registry

import (
	"fmt"
	"testing"
)

// BenchmarkCacheService measures the hot-path read of the local cache.
func BenchmarkCacheService(b *testing.B) {
	c := newCache(CacheConfig{}, nil)
	bld := &cacheBuilder{cur: c.state.Load()}
	var list []*Instance
	for i := range 200 {
		list = append(list, &Instance{Service: fmt.Sprintf("svc-%d", i%20), ID: fmt.Sprintf("i%d", i), Status: StatusHealthy})
	}
	bld.reset(list)
	c.publish(bld)
	b.ReportAllocs()
	for b.Loop() {
		if s := c.Service("svc-7"); s == nil || len(s.Healthy) != 10 {
			b.Fatal("wrong snapshot")
		}
	}
}
