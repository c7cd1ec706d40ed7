package ratelimit_test

import (
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/plexushq/plexus/clock"
	"github.com/plexushq/plexus/ratelimit"
)

// The seed gateway's limit: 100 requests per minute per client IP and path.
func Example() {
	clk := clock.NewManual(time.Unix(0, 0))
	l := ratelimit.New(ratelimit.Config{Requests: 100, Per: time.Minute}, ratelimit.WithClock(clk))
	key, _ := ratelimit.KeyFunc("ip+path")
	r := httptest.NewRequest("GET", "/api/users/1", nil)

	var res ratelimit.Result
	for range 101 {
		res = l.Allow(key(r, "198.51.100.4"))
	}
	fmt.Println(res.Allowed, res.Limit, res.Remaining, res.RetryAfter)

	clk.Advance(600 * time.Millisecond) // one token back
	res = l.Allow(key(r, "198.51.100.4"))
	fmt.Println(res.Allowed, res.Remaining)
	// Output:
	// false 100 0 600ms
	// true 0
}

func ExampleKeyFunc() {
	key, err := ratelimit.KeyFunc("apikey")
	if err != nil {
		panic(err)
	}
	r := httptest.NewRequest("GET", "/api/orders", nil)
	fmt.Println(key(r, "192.0.2.10")) // no key: by IP
	r.Header.Set("Authorization", "Bearer s3cr3t")
	fmt.Println(key(r, "192.0.2.10"))

	_, err = ratelimit.KeyFunc("cookie:session")
	fmt.Println(err)
	// Output:
	// 192.0.2.10
	// k:s3cr3t
	// bad rate-limit key "cookie:session" (want ip, ip+path, header:NAME or apikey)
}
