// Package backoff computes the waits between attempts to reach a platform
// that is down: growing from a minimum to a cap, each one jittered so that
// several parts (or several clinics' bots) do not retry in lockstep.
//
// It lives apart from the adapters so that every part of the program that
// starts, fails and recovers on its own backs off the same way, and so
// that tests can shorten every wait with one Policy.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Policy is a capped exponential backoff with jitter. The zero value
// waits 1 s doubling up to 1 min.
type Policy struct {
	// Min is the wait before the second attempt (default 1 s).
	Min time.Duration
	// Max caps every wait (default 1 min; never below Min).
	Max time.Duration
}

// Delay returns the wait before attempt n+1 after n failed attempts
// (n >= 1): Min doubling up to Max, then a uniformly random point in the
// upper half of that, so the cap is never exceeded and waits never
// collapse to zero.
func (p Policy) Delay(n int) time.Duration {
	lo, hi := p.Min, p.Max
	if lo <= 0 {
		lo = time.Second
	}
	if hi <= 0 {
		hi = time.Minute
	}
	hi = max(hi, lo)
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + rand.N(d/2+1)
}
