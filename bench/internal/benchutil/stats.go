package benchutil

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// Latencies collects samples from many goroutines; each goroutine should
// use its own Recorder and Merge at the end to keep the hot path lock-free.
type Latencies struct {
	mu      sync.Mutex
	samples []time.Duration
}

// Recorder is one goroutine's sample buffer.
type Recorder struct{ s []time.Duration }

// Add records one sample.
func (r *Recorder) Add(d time.Duration) { r.s = append(r.s, d) }

// Len is the number of samples recorded.
func (r *Recorder) Len() int { return len(r.s) }

// Merge adds a recorder's samples.
func (l *Latencies) Merge(r *Recorder) {
	l.mu.Lock()
	l.samples = append(l.samples, r.s...)
	l.mu.Unlock()
}

// Add records one sample under the lock (for low rates).
func (l *Latencies) Add(d time.Duration) {
	l.mu.Lock()
	l.samples = append(l.samples, d)
	l.mu.Unlock()
}

// Len is the number of samples.
func (l *Latencies) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.samples)
}

// Percentiles returns the given quantiles (0..1) of the samples.
func (l *Latencies) Percentiles(qs ...float64) []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	slices.Sort(l.samples)
	out := make([]time.Duration, len(qs))
	for i, q := range qs {
		out[i] = Quantile(l.samples, q)
	}
	return out
}

// Quantile of sorted samples, nearest rank; 0 when empty.
func Quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

// Result is one measured row.
type Result struct {
	Name     string
	Rate     float64       // operations per second
	P50, P99 time.Duration // 0 when not measured
	Errors   int64
	Note     string
	// PerCPU is operations per CPU second of the measured process (0 when
	// not measured); Cores is the CPU it used on average during the run.
	PerCPU, Cores float64
}

// Median returns the result whose rate is the median of rs (for several
// rounds of the same target), with the median p50/p99 and summed errors.
func Median(rs []Result) Result {
	if len(rs) == 0 {
		return Result{}
	}
	med := func(f func(Result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		if len(v)%2 == 0 {
			return (v[len(v)/2-1] + v[len(v)/2]) / 2
		}
		return v[len(v)/2]
	}
	out := rs[0]
	out.Rate = med(func(r Result) float64 { return r.Rate })
	out.P50 = time.Duration(med(func(r Result) float64 { return float64(r.P50) }))
	out.P99 = time.Duration(med(func(r Result) float64 { return float64(r.P99) }))
	out.PerCPU = med(func(r Result) float64 { return r.PerCPU })
	out.Cores = med(func(r Result) float64 { return r.Cores })
	out.Errors = 0
	for _, r := range rs {
		out.Errors += r.Errors
	}
	return out
}

// FmtDur prints a latency compactly (µs below 10ms).
func FmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "–"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	case d < 10*time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	return d.Round(time.Millisecond).String()
}

// FmtRate prints a rate with thousands separators.
func FmtRate(r float64) string {
	n := int64(r + 0.5)
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
