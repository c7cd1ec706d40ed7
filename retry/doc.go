// Package retry owns what the gateway and the service client share about
// trying a request again: which requests are safe to send twice
// (Idempotent, DialError), which answers are worth trying on another
// instance (RetryableStatus), which results count against a backend
// (Failure), and the Budget that bounds the extra load retries may add.
//
// A retry budget means one thing everywhere (the gateway's
// retries.budget, the client's RetryPolicy.Budget and HedgePolicy.Budget):
// over the last 10 seconds, retries may be at most Ratio times the
// requests made in those seconds, plus MinPerSecond for every second of
// the window so that a quiet service can still retry. Deposits older than
// the window are forgotten: quiet hours do not bank retries for the next
// outage. This is Finagle's RetryBudget; it keeps a total outage from
// multiplying the load on a struggling service (the seed's service client
// retried every call three times; docs/client.md).
//
// Do, with a Policy, is how Plexus's Go clients of the admin API repeat a
// write that is safe to repeat (an append with its expected version and
// event ids, a publish with its message id): after a 503 with a retry
// hint, a 502 or 504 from a proxy, or a request that failed on the way;
// never after a 4xx, a 500 or a 507 (Delay says which and how long).
package retry
