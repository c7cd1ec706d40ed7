package balance_test

import (
	"fmt"
	"time"

	"github.com/plexushq/plexus/balance"
)

// A gateway keeps one Endpoint per instance and one Picker per service, and
// rebuilds the Set when the registry changes.
func Example() {
	a := balance.NewEndpoint("users-1", 1)
	b := balance.NewEndpoint("users-2", 1)
	set := balance.NewSet([]*balance.Endpoint{a, b})

	p, err := balance.New(balance.LeastConnections)
	if err != nil {
		panic(err)
	}
	a.Begin() // a request is in flight on users-1

	var tried balance.Mask
	i := p.Pick(set, 0, tried)
	ep := set.At(i)
	fmt.Println("first try:", ep.ID())

	ep.Begin()
	ep.End(3*time.Millisecond, false) // it failed: retry elsewhere
	tried = tried.With(i)
	fmt.Println("retry:", set.At(p.Pick(set, 0, tried)).ID())

	tried = tried.With(0)
	fmt.Println("nothing left:", p.Pick(set, 0, tried))
	// Output:
	// first try: users-2
	// retry: users-1
	// nothing left: -1
}

// Weighted is smooth weighted round robin: weights 5, 1, 1 interleave.
func ExampleNew_weighted() {
	set := balance.NewSet([]*balance.Endpoint{
		balance.NewEndpoint("a", 5), balance.NewEndpoint("b", 1), balance.NewEndpoint("c", 1),
	})
	p, _ := balance.New(balance.Weighted)
	for range 7 {
		fmt.Print(set.At(p.Pick(set, 0, 0)).ID(), " ")
	}
	fmt.Println()
	// Output: a a b a c a a
}

// Hash keeps a client on the same endpoint while that endpoint is in the
// set; excluding it moves only that client's requests.
func ExampleHashString() {
	set := balance.NewSet([]*balance.Endpoint{
		balance.NewEndpoint("cart-1", 1), balance.NewEndpoint("cart-2", 1), balance.NewEndpoint("cart-3", 1),
	})
	p, _ := balance.New(balance.Hash)
	key := balance.HashString("203.0.113.7")
	first := p.Pick(set, key, 0)
	again := p.Pick(set, key, 0)
	other := p.Pick(set, key, balance.Mask(0).With(first))
	fmt.Println(first == again, other != first)
	// Output: true true
}
