package benchutil

import (
	"testing"
	"time"
)

const wrkSample = `Running 10s test @ http://127.0.0.1:8080/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   520.12us  100.00us   5.00ms   90.00%
    Req/Sec    60.00k     2.00k   65.00k    70.00%
  Latency Distribution
     50%  318.00us
     75%  400.00us
     90%  600.00us
     99%    1.20ms
  600000 requests in 10.00s, 120.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:  60000.50
Transfer/sec:     12.00MB
`

func TestParseWrk(t *testing.T) {
	r, err := ParseWrk(wrkSample)
	if err != nil {
		t.Fatal(err)
	}
	want := WrkResult{Requests: 600000, RPS: 60000.5, P50: 318 * time.Microsecond,
		P90: 600 * time.Microsecond, P99: 1200 * time.Microsecond, Non2xx: 5, SocketErrors: 3}
	if r != want {
		t.Fatalf("got %+v, want %+v", r, want)
	}
	if _, err := ParseWrk("garbage"); err == nil {
		t.Fatal("no error for output without Requests/sec")
	}
}

func TestQuantileAndMedian(t *testing.T) {
	s := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if q := Quantile(s, 0.5); q != 5 {
		t.Fatalf("p50 = %v", q)
	}
	if q := Quantile(s, 0.99); q != 10 {
		t.Fatalf("p99 = %v", q)
	}
	m := Median([]Result{{Rate: 1}, {Rate: 9}, {Rate: 3}})
	if m.Rate != 3 {
		t.Fatalf("median rate = %v", m.Rate)
	}
}

func FuzzParseWrk(f *testing.F) {
	f.Add(wrkSample)
	f.Add("Requests/sec: 12\n 50% 1.5ms\n")
	f.Add(" 99% 1e309s\nRequests/sec: x")
	f.Fuzz(func(t *testing.T, s string) {
		r, _ := ParseWrk(s)
		if r.P50 < 0 || r.P90 < 0 || r.P99 < 0 {
			t.Fatalf("negative latency from %q: %+v", s, r)
		}
	})
}

func TestParseStat(t *testing.T) {
	s := "1234 (my (odd) name) S 1 1230 1230 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 100 0 0"
	ticks, pg, ok := parseStat(s)
	if !ok || pg != 1230 || ticks != 300 {
		t.Fatalf("got %d %d %v", ticks, pg, ok)
	}
	if _, _, ok := parseStat("garbage"); ok {
		t.Fatal("parsed garbage")
	}
}
