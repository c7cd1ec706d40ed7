// Package ratelimit owns per-key rate limits: a token bucket per client key
// (IP, IP and path, a header, an API key) with bounded memory.
//
// Each key gets a bucket of Burst tokens refilled at Requests per Per; a
// request takes one token or is denied. The bucket is stored as one number,
// its theoretical arrival time (GCRA), so a key costs a map entry and a few
// words. There are no goroutines: a key idle long enough for its bucket to be
// full again carries no information and is dropped lazily, and MaxKeys caps
// the number of keys (when full, expired keys go first, then the one whose
// bucket is closest to full, so that a flood of new keys cannot hand a
// client that spent its burst a fresh one).
package ratelimit
