package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"time"
)

// ErrCheckClaimed means another checker holds the instance's checks and
// reports in time; ClaimCheck changed nothing.
var ErrCheckClaimed = errors.New("registry: another checker checks this instance")

// takeoverGrace is how much longer than its interval an instance's checker
// may stay silent before another checker takes the instance over: half
// the interval, at least a second (a busy node is not a dead one) and at
// most five.
func takeoverGrace(interval time.Duration) time.Duration {
	return min(max(interval/2, time.Second), 5*time.Second)
}

// checkerActive is the last sign of life of inst's checker: its last
// stored check or its claim, whichever is later.
func checkerActive(inst *Instance) time.Time {
	var t time.Time
	if inst.CheckerSince != nil {
		t = *inst.CheckerSince
	}
	if inst.LastCheck != nil && inst.LastCheck.After(t) {
		t = *inst.LastCheck
	}
	return t
}

// claimOpen is when a checker other than inst's own may claim it: at once
// when nobody holds it, else once its checker has missed its interval by
// the grace.
func claimOpen(inst *Instance) time.Time {
	if inst.Checker == "" {
		return time.Time{}
	}
	iv := inst.Check.Interval
	return checkerActive(inst).Add(iv + takeoverGrace(iv))
}

// ClaimCheck makes checker the one that checks the instance, by
// compare-and-set, so that of several checkers that see a new instance (or
// one whose checker went silent) at the same moment exactly one wins and
// the others get ErrCheckClaimed. Claiming an instance one already holds
// changes nothing. ErrNotFound when the instance is gone.
func (s *Store) ClaimCheck(ctx context.Context, service, id, checker string) (*Instance, error) {
	return s.update(ctx, service, id, func(inst *Instance) (bool, error) {
		if inst.Checker == checker {
			return false, nil
		}
		now := s.now().UTC()
		if now.Before(claimOpen(inst)) {
			return false, ErrCheckClaimed
		}
		inst.Checker, inst.CheckerSince = checker, &now
		return true, nil
	})
}

// defaultCheckerID is the host name and 8 random characters: readable in
// the instance JSON, and distinct for two checkers on one host.
func defaultCheckerID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "checker"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}
