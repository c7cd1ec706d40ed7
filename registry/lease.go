package registry

import (
	"context"
	"time"
)

// Heartbeat renews an instance's lease: its expiresAt becomes now + ttl.
// ErrNotFound means the lease had already ended (or the instance was never
// registered): the caller must register again.
func (s *Store) Heartbeat(ctx context.Context, service, id string) (*Instance, error) {
	return s.update(ctx, service, id, func(inst *Instance) (bool, error) {
		now := s.now().UTC()
		inst.LastHeartbeat = now
		inst.ExpiresAt = now.Add(inst.TTL)
		return true, nil
	})
}

// SetStatus sets draining (no new traffic; checks go on but do not change
// the status) or healthy (back in rotation; the check counters restart).
func (s *Store) SetStatus(ctx context.Context, service, id string, status Status) (*Instance, error) {
	if err := ValidateStatus(status); err != nil {
		return nil, err
	}
	return s.update(ctx, service, id, func(inst *Instance) (bool, error) {
		if inst.Status == status {
			return false, nil
		}
		inst.Status = status
		inst.CheckPasses, inst.CheckFailures = 0, 0
		return true, nil
	})
}

// CheckResult is the outcome of one active health check.
type CheckResult struct {
	// Started is when the check began; a result older than the stored
	// last check (another checker was quicker) is dropped.
	Started time.Time
	// OK is a 2xx answer within the timeout.
	OK bool
	// Output describes the answer or the error (clipped to MaxCheckOutput).
	Output string
	// Checker names the checker that ran the check; when another checker
	// has claimed the instance since, the result is dropped (ErrStaleCheck).
	// Empty: any checker.
	Checker string
}

// RecordCheck applies a check result: consecutive passes and failures are
// counted; fall failures in a row make a healthy instance unhealthy and
// rise passes in a row make an unhealthy one healthy again. Draining
// instances stay draining. It returns the stored instance and whether the
// status changed. A result that lost to a newer check by another checker
// changes nothing and gives ErrStaleCheck, as does the result of a
// checker that no longer holds the instance's claim (ClaimCheck).
func (s *Store) RecordCheck(ctx context.Context, service, id string, res CheckResult) (*Instance, bool, error) {
	var changed bool
	inst, err := s.update(ctx, service, id, func(inst *Instance) (bool, error) {
		changed = false
		if inst.LastCheck != nil && !inst.LastCheck.Before(res.Started) {
			return false, ErrStaleCheck
		}
		if res.Checker != "" && inst.Checker != "" && inst.Checker != res.Checker {
			return false, ErrStaleCheck
		}
		now := s.now().UTC()
		inst.LastCheck = &now
		if res.Checker != "" && inst.Checker == "" {
			inst.Checker, inst.CheckerSince = res.Checker, &now
		}
		inst.CheckOutput = clipOutput(res.Output)
		if res.OK {
			inst.CheckPasses, inst.CheckFailures = min(inst.CheckPasses+1, MaxRiseFall), 0
			if inst.Status == StatusUnhealthy && inst.CheckPasses >= inst.Check.Rise {
				inst.Status, changed = StatusHealthy, true
			}
		} else {
			inst.CheckPasses, inst.CheckFailures = 0, min(inst.CheckFailures+1, MaxRiseFall)
			if inst.Status == StatusHealthy && inst.CheckFailures >= inst.Check.Fall {
				inst.Status, changed = StatusUnhealthy, true
			}
		}
		return true, nil
	})
	return inst, changed, err
}

func clipOutput(s string) string {
	if len(s) <= MaxCheckOutput {
		return s
	}
	// Cut at a rune boundary.
	cut := MaxCheckOutput
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}
