// Package breaker owns circuit breakers: per service and per instance, a
// breaker stops sending requests to a backend that keeps failing and probes
// it again after a reset timeout.
//
// A Breaker is closed (requests pass), open (requests are refused with
// ErrOpen) or half-open (a bounded number of probe requests pass). It opens
// on FailureThreshold consecutive failures, or when the failure ratio over
// the rolling Window reaches FailureRatio once at least MinRequests results
// were seen in it. After ResetTimeout the next Allow moves it to half-open;
// HalfOpenRequests successful probes close it, any failed probe reopens it.
//
// There is no goroutine or timer per breaker: time is read from the Clock on
// Allow and Done, and the window is a ring of buckets aged lazily.
//
// Every Allow that succeeds returns a Ticket that must be handed back to Done
// with the result, or to Release when the call says nothing about the
// backend (its own caller failed). A ticket carries the breaker's generation, which changes
// on every state change, so results of requests admitted before a change (a
// slow request finishing after the breaker opened) are ignored.
package breaker
