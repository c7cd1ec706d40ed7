package breaker_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/plexushq/plexus/breaker"
	"github.com/plexushq/plexus/clock"
)

func Example() {
	clk := clock.NewManual(time.Unix(0, 0))
	b := breaker.New("users", breaker.Config{FailureThreshold: 2, ResetTimeout: 30 * time.Second, HalfOpenRequests: 1},
		breaker.WithClock(clk),
		breaker.OnStateChange(func(name string, from, to breaker.State) {
			fmt.Printf("%s: %s → %s\n", name, from, to)
		}))

	call := func(status int, err error) {
		t, aerr := b.Allow()
		if errors.Is(aerr, breaker.ErrOpen) {
			fmt.Println("refused, retry after", b.Info().RetryAfter)
			return
		}
		if err == nil && status >= 500 { // the caller decides what a failure is
			err = fmt.Errorf("HTTP %d", status)
		}
		b.Record(t, err)
	}
	call(404, nil) // a client error: not a failure
	call(503, nil)
	call(502, nil)
	call(200, nil)
	clk.Advance(30 * time.Second)
	call(200, nil) // the probe succeeds
	// Output:
	// users: closed → open
	// refused, retry after 30s
	// users: open → half-open
	// users: half-open → closed
}

// A Group holds one breaker per service and per instance.
func ExampleGroup() {
	g := breaker.NewGroup(breaker.Config{FailureThreshold: 1}, 1000)
	t, _ := g.Get("orders/instance-2").Allow()
	g.Get("orders/instance-2").Done(t, false)
	g.Get("orders")
	for _, in := range g.List() {
		fmt.Println(in.Name, in.State)
	}
	// Output:
	// orders closed
	// orders/instance-2 open
}
