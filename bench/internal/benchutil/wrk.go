package benchutil

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// WrkResult is what one wrk run reports.
type WrkResult struct {
	Requests      int64
	RPS           float64
	P50, P90, P99 time.Duration
	Non2xx        int64
	SocketErrors  int64
}

// RunWrk runs wrk with --latency against url, pinned to cpus ("" = free).
func RunWrk(ctx context.Context, cpus string, threads, conns int, d time.Duration, url string) (WrkResult, error) {
	argv := Pin(cpus, "wrk", "--latency", "-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns),
		"-d", fmt.Sprintf("%ds", int(d.Seconds())), "--timeout", "5s", url)
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return WrkResult{}, fmt.Errorf("wrk: %w: %s", err, out)
	}
	r, err := ParseWrk(string(out))
	if err != nil {
		return r, fmt.Errorf("%w in:\n%s", err, out)
	}
	return r, nil
}

// ParseWrk reads wrk's --latency output.
func ParseWrk(out string) (WrkResult, error) {
	var r WrkResult
	var sawRPS bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch {
		case f[0] == "Requests/sec:" && len(f) == 2:
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return r, fmt.Errorf("wrk: requests/sec %q: %w", f[1], err)
			}
			r.RPS, sawRPS = v, true
		case len(f) == 2 && (f[0] == "50%" || f[0] == "90%" || f[0] == "99%"):
			d, err := ParseWrkDuration(f[1])
			if err != nil {
				return r, err
			}
			switch f[0] {
			case "50%":
				r.P50 = d
			case "90%":
				r.P90 = d
			default:
				r.P99 = d
			}
		case len(f) >= 3 && f[1] == "requests" && f[2] == "in":
			r.Requests, _ = strconv.ParseInt(f[0], 10, 64)
		case len(f) >= 5 && f[0] == "Non-2xx":
			r.Non2xx, _ = strconv.ParseInt(f[len(f)-1], 10, 64)
		case f[0] == "Socket" && len(f) >= 3:
			for _, x := range f[3:] {
				n, err := strconv.ParseInt(strings.TrimSuffix(x, ","), 10, 64)
				if err == nil {
					r.SocketErrors += n
				}
			}
		}
	}
	if !sawRPS {
		return r, fmt.Errorf("wrk: no Requests/sec line")
	}
	return r, nil
}

// ParseWrkDuration reads wrk's "318.00us", "1.20ms", "2.00s", "1.00m".
func ParseWrkDuration(s string) (time.Duration, error) {
	units := []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}}
	for _, u := range units {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 || f > 1e6 {
				return 0, fmt.Errorf("wrk: duration %q", s)
			}
			return time.Duration(f * float64(u.unit)), nil
		}
	}
	return 0, fmt.Errorf("wrk: duration %q", s)
}
