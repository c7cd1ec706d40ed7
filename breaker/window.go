package breaker

import "time"

// buckets is the number of buckets of the rolling window.
const buckets = 10

// window counts results over a rolling span as a ring of buckets. Buckets
// are aged lazily: one whose index is stale is cleared when written to and
// skipped when summed. Not safe for concurrent use (the Breaker's mu guards
// it).
type window struct {
	width int64 // ns per bucket
	b     [buckets]bucket
}

type bucket struct {
	idx        int64 // absolute bucket number (time / width)
	ok, failed int
}

func (w *window) init(span time.Duration) {
	w.width = max(int64(span)/buckets, 1)
	w.reset()
}

func (w *window) reset() {
	for i := range w.b {
		w.b[i] = bucket{idx: -1}
	}
}

// add counts one result at time t (ns).
func (w *window) add(t int64, failed bool) {
	i := t / w.width
	b := &w.b[i%buckets]
	if b.idx != i {
		*b = bucket{idx: i}
	}
	if failed {
		b.failed++
	} else {
		b.ok++
	}
}

// totals returns the failures and results within the window ending at t.
func (w *window) totals(t int64) (failed, total int) {
	i := t / w.width
	for _, b := range w.b {
		if b.idx > i-buckets && b.idx <= i {
			failed += b.failed
			total += b.ok + b.failed
		}
	}
	return failed, total
}
