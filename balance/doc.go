// Package balance picks one endpoint of a service for each request: round
// robin, least connections, random, smooth weighted round robin,
// power-of-two-choices over a decaying peak EWMA of latency (the gateway's
// default), and consistent (rendezvous) hashing.
//
// Endpoints live as long as the instance they stand for and carry the live
// counters (in-flight requests, latency EWMA). A Set is an immutable ordered
// snapshot of the endpoints that may be picked, built once per registry
// snapshot. A Picker chooses an index of a Set, skipping the indexes of an
// exclusion Mask (already tried, ejected, breaker open). Picks never allocate
// and are safe for concurrent use.
//
// Typical use:
//
//	p, _ := balance.New(balance.P2C)          // one Picker per service
//	set := balance.NewSet(endpoints)          // rebuilt when the instances change
//	i := p.Pick(set, 0, 0)
//	if i < 0 { /* nothing left: 503 */ }
//	ep := set.At(i)
//	ep.Begin()
//	start := time.Now()
//	err := call(ep)
//	ep.End(time.Since(start), err == nil)
package balance
