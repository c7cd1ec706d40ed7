package breaker

import "time"

// change is one state transition, reported to OnStateChange after the lock
// is released.
type change struct{ from, to State }

// Allow asks to make one call. It returns a Ticket for Done, or ErrOpen when
// the breaker is open (and its reset timeout has not passed) or half-open
// with HalfOpenRequests probes already in flight. While closed it takes no
// lock and reads no clock.
func (b *Breaker) Allow() (Ticket, error) {
	if v := b.packed.Load(); State(v&3) == Closed {
		return Ticket{gen: v >> 2}, nil
	}
	var ch [2]change
	nch := 0
	b.mu.Lock()
	now := b.now()
	switch b.state {
	case Closed:
		t := Ticket{gen: b.gen}
		b.mu.Unlock()
		return t, nil
	case Open:
		if now.Sub(b.openedAt) < b.cfg.ResetTimeout {
			b.mu.Unlock()
			return Ticket{}, ErrOpen
		}
		ch[nch] = b.setState(HalfOpen, now)
		nch++
	case HalfOpen:
		if b.probes >= b.cfg.HalfOpenRequests {
			if now.Sub(b.halfSince) < b.cfg.ResetTimeout {
				b.mu.Unlock()
				return Ticket{}, ErrOpen
			}
			// Probes admitted a whole reset timeout ago never reported
			// back (abandoned tickets): start a fresh half-open round so
			// the breaker cannot stay stuck.
			b.setState(HalfOpen, now)
		}
	}
	b.probes++
	t := Ticket{gen: b.gen, probe: true}
	b.unlockAndNotify(ch[:nch])
	return t, nil
}

// Release hands back a ticket whose call says nothing about the backend
// (the caller gave up, or its own client failed): no result is recorded,
// and a half-open probe slot it held is freed for another probe. Like Done,
// call it once per ticket.
func (b *Breaker) Release(t Ticket) {
	if !t.probe {
		return // a closed-state ticket holds nothing
	}
	b.mu.Lock()
	if t.gen == b.gen && b.state == HalfOpen && b.probes > 0 {
		b.probes--
	}
	b.mu.Unlock()
}

// Record hands t back with the error of the call it admitted: nil is a
// success, an error the breaker's failure classification counts
// (WithFailure) is a failure, and any other error releases the ticket
// without a result (Release).
func (b *Breaker) Record(t Ticket, err error) {
	switch {
	case err == nil:
		b.Done(t, true)
	case b.failure(err):
		b.Done(t, false)
	default:
		b.Release(t)
	}
}

// Done reports the result of the call admitted with t. Results of tickets
// from an earlier generation (issued before the last state change) and of
// the zero Ticket are ignored. Record classifies an error for it.
func (b *Breaker) Done(t Ticket, success bool) {
	if t.gen == 0 {
		return
	}
	b.mu.Lock()
	if t.gen != b.gen {
		b.mu.Unlock()
		return
	}
	var ch [1]change
	nch := 0
	now := b.now()
	switch b.state {
	case Closed:
		b.win.add(b.since(now), !success)
		if success {
			b.consec = 0
		} else {
			b.consec++
		}
		if b.shouldTrip(now) {
			ch[0] = b.setState(Open, now)
			nch++
		}
	case HalfOpen:
		b.probes--
		if !success {
			ch[0] = b.setState(Open, now)
			nch++
		} else if b.successes++; b.successes >= b.cfg.HalfOpenRequests {
			ch[0] = b.setState(Closed, now)
			nch++
		}
	}
	b.unlockAndNotify(ch[:nch])
}

// shouldTrip applies the two opening rules while closed. Called with mu.
func (b *Breaker) shouldTrip(now time.Time) bool {
	if b.cfg.FailureThreshold > 0 && b.consec >= b.cfg.FailureThreshold {
		return true
	}
	if b.cfg.FailureRatio <= 0 {
		return false
	}
	fails, total := b.win.totals(b.since(now))
	return total >= b.cfg.MinRequests && float64(fails) >= b.cfg.FailureRatio*float64(total)
}

// setState moves to state to, starting a new generation so outstanding
// tickets are ignored. Called with mu.
func (b *Breaker) setState(to State, now time.Time) change {
	c := change{from: b.state, to: to}
	b.state = to
	b.gen++
	b.packed.Store(b.gen<<2 | uint64(to))
	b.probes, b.successes = 0, 0
	switch to {
	case Open:
		b.openedAt = now
	case HalfOpen:
		b.halfSince = now
	case Closed:
		b.openedAt = time.Time{}
		b.consec = 0
		b.win.reset()
	}
	return c
}

// unlockAndNotify queues the changes, releases mu and delivers queued
// changes outside it. Whoever holds notifyMu delivers everything queued, in
// order; a goroutine that finds it held leaves its changes to the holder,
// which checks the queue again after letting go. So callbacks run one at a
// time, in the order of the changes, never under mu, and may even call
// Allow or Done of the same breaker without deadlocking.
func (b *Breaker) unlockAndNotify(chs []change) {
	if len(chs) == 0 || b.onChange == nil {
		b.mu.Unlock()
		return
	}
	b.pending = append(b.pending, chs...)
	b.mu.Unlock()
	for b.notifyMu.TryLock() {
		for {
			b.mu.Lock()
			batch := b.pending
			b.pending = nil
			b.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			for _, c := range batch {
				b.onChange(b.name, c.from, c.to)
			}
		}
		b.notifyMu.Unlock()
		b.mu.Lock()
		more := len(b.pending) > 0
		b.mu.Unlock()
		if !more {
			return
		}
	}
}

// now reads the clock. With the system clock it reads only the monotonic
// clock (cheaper than time.Now) and derives the wall time from b.born.
func (b *Breaker) now() time.Time {
	if b.sysClock {
		return b.born.Add(time.Since(b.born))
	}
	return b.clock.Now()
}

// since converts a clock reading to nanoseconds since the breaker was made.
func (b *Breaker) since(now time.Time) int64 { return int64(max(now.Sub(b.born), 0)) }

// Info returns the breaker's current state and counters.
func (b *Breaker) Info() Info {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	fails, total := b.win.totals(b.since(now))
	in := Info{
		Name:                b.name,
		State:               b.state,
		Failures:            fails,
		Requests:            total,
		ConsecutiveFailures: b.consec,
		OpenedAt:            b.openedAt,
	}
	switch b.state {
	case Open:
		in.RetryAfter = max(b.cfg.ResetTimeout-now.Sub(b.openedAt), 0)
	case HalfOpen:
		in.RetryAfter = min(time.Second, b.cfg.ResetTimeout)
	}
	return in
}
