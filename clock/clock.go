// Package clock gives the service its notion of time, so that a two-day
// follow-up can be tested in microseconds.
//
// Production code uses Real. Tests and the replay command use a *Fake, whose
// Set and Add move time forward and fire, in order, every timer that fell due.
//
// # Concurrency
//
// Both implementations are safe for concurrent use.
package clock

import (
	"sort"
	"sync"
	"time"
)

// Clock is the time source the scheduler and dispatcher wait on.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// After returns a channel that receives the time once d has passed.
	After(d time.Duration) <-chan time.Time
}

// Real is the wall clock.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// After is time.After.
func (Real) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Fake is a manual clock for tests and replays. Its zero value is not
// usable; create one with NewFake.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

// NewFake returns a fake clock standing at t.
func NewFake(t time.Time) *Fake { return &Fake{now: t} }

// Now returns the fake's current time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// After returns a channel that receives once the fake clock reaches now+d.
// A non-positive d fires at once.
func (f *Fake) After(d time.Duration) <-chan time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan time.Time, 1)
	at := f.now.Add(d)
	if d <= 0 {
		ch <- f.now
		return ch
	}
	f.waiters = append(f.waiters, waiter{at: at, ch: ch})
	return ch
}

// Add moves the clock forward by d and fires the timers that fell due.
func (f *Fake) Add(d time.Duration) { f.Set(f.Now().Add(d)) }

// Set moves the clock to t (never backwards) and fires, in due order, the
// timers that fell due.
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t.Before(f.now) {
		return
	}
	f.now = t
	sort.SliceStable(f.waiters, func(i, j int) bool { return f.waiters[i].at.Before(f.waiters[j].at) })
	keep := f.waiters[:0]
	for _, w := range f.waiters {
		if !w.at.After(t) {
			w.ch <- t
			continue
		}
		keep = append(keep, w)
	}
	f.waiters = keep
}

// Waiters reports how many timers are pending; tests use it to wait until a
// goroutine is asleep on the clock before moving it.
func (f *Fake) Waiters() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.waiters)
}

// Offset is a clock running at wall-clock speed from a movable offset. The
// console uses it so that `/skip 24h` shows the 24 h check-in at once.
type Offset struct {
	base Clock
	mu   sync.Mutex
	off  time.Duration
}

// NewOffset returns a clock that reads base plus a skip offset (zero at first).
func NewOffset(base Clock) *Offset { return &Offset{base: base} }

// Now returns the base time plus the offset.
func (o *Offset) Now() time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.base.Now().Add(o.off)
}

// After waits on the base clock. Callers that sleep until a deadline should
// be woken after Skip (the service's Wake does that).
func (o *Offset) After(d time.Duration) <-chan time.Time { return o.base.After(d) }

// Skip moves the clock forward by d.
func (o *Offset) Skip(d time.Duration) {
	if d <= 0 {
		return
	}
	o.mu.Lock()
	o.off += d
	o.mu.Unlock()
}
