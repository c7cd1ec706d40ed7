package benchutil

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, 100 on every Linux the benchmarks run on.
const clockTick = 100

// GroupCPU is the user+system CPU time used so far by the live processes
// of process group pgid (a peer and its workers). On a shared machine the
// work done per CPU second is steadier than the rate, which depends on how
// much CPU the neighbours leave.
func GroupCPU(pgid int) time.Duration {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var ticks int64
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		t, pg, ok := parseStat(string(b))
		if ok && pg == pgid {
			ticks += t
		}
	}
	return time.Duration(ticks) * time.Second / clockTick
}

// parseStat returns utime+stime and the process group from /proc/PID/stat.
func parseStat(s string) (ticks int64, pgrp int, ok bool) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state): pgrp is field 5, utime 14, stime 15.
	if len(f) < 13 {
		return 0, 0, false
	}
	pg, err1 := strconv.Atoi(f[2])
	ut, err2 := strconv.ParseInt(f[11], 10, 64)
	st, err3 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, 0, false
	}
	return ut + st, pg, true
}
