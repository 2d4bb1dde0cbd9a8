// Package handoff is the queue between the callers of a store and its
// group committer, shared by both backends (the bbolt store's committer
// and the PostgreSQL store's group commit).
//
// A caller queues its work with a Ticket and waits for the outcome. While
// the work still waits in the queue, the end of the caller's context
// withdraws it, so it never runs; once the committer has taken it into a
// group, the caller waits for the group's outcome whatever its context
// does, so a step that was committed is never reported as failed. That
// race (the caller giving up while the committer takes the work) is
// settled by one compare-and-swap on the ticket: the work is either taken
// and reported, or abandoned and dropped unrun, never both.
package handoff

import (
	"context"
	"sync"
	"sync/atomic"
)

// Ticket states.
const (
	queued int32 = iota
	taken
	abandoned
)

// Ticket is one caller's place in the queue: the outcome the committer
// reports and whether the work was taken or abandoned. Create it with
// NewTicket; the zero value has no outcome channel.
type Ticket struct {
	done  chan error
	state atomic.Int32
}

// NewTicket returns a ticket for work about to be queued.
func NewTicket() *Ticket { return &Ticket{done: make(chan error, 1)} }

// Take is called by the committer when it puts the work in a group. It
// reports false when the caller has abandoned it: the work must then be
// dropped unrun.
func (t *Ticket) Take() bool { return t.state.CompareAndSwap(queued, taken) }

// Abandoned reports whether the caller gave the work up while it was
// queued, so a committer can drop it without taking it.
func (t *Ticket) Abandoned() bool { return t.state.Load() == abandoned }

// Withdraw is the caller giving the work up: it reports true when the
// work was still queued (it is now abandoned and will never run), false
// when the committer has already taken it (its outcome will come).
func (t *Ticket) Withdraw() bool { return t.state.CompareAndSwap(queued, abandoned) }

// Taken reports whether the committer has taken the work into a group.
func (t *Ticket) Taken() bool { return t.state.Load() == taken }

// Waiting reports whether the work is still queued: neither taken nor
// abandoned, so its caller can still withdraw it.
func (t *Ticket) Waiting() bool { return t.state.Load() == queued }

// Outcome is where the outcome reported by Finish arrives.
func (t *Ticket) Outcome() <-chan error { return t.done }

// Finish reports the outcome of work the committer took. It is called
// once per taken ticket and never blocks.
func (t *Ticket) Finish(err error) { t.done <- err }

// Queue passes work of type T from callers to one committer goroutine,
// which reads Items until it is closed. Its methods are safe for
// concurrent use.
type Queue[T any] struct {
	mu     sync.RWMutex // guards closed and sends on ch
	closed bool
	ch     chan T
}

// NewQueue returns a queue holding up to size items before callers wait.
func NewQueue[T any](size int) *Queue[T] { return &Queue[T]{ch: make(chan T, size)} }

// Items is what the committer reads; it is closed by Close once no
// caller can queue any more.
func (q *Queue[T]) Items() <-chan T { return q.ch }

// Len is how many items wait in the queue, not yet read by the committer
// (for tests and stall reports).
func (q *Queue[T]) Len() int { return len(q.ch) }

// Close stops taking work; work already queued stays readable from Items.
// Calling it again does nothing.
func (q *Queue[T]) Close() {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.ch)
	}
	q.mu.Unlock()
}

// Do queues v, whose ticket is t, and returns the outcome the committer
// reports with t.Finish. It returns errClosed once Close has begun, and
// ctx.Err() when ctx ends before v was queued or while v still waited in
// the queue (then v never runs).
func (q *Queue[T]) Do(ctx context.Context, v T, t *Ticket, errClosed error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	q.mu.RLock()
	if q.closed {
		q.mu.RUnlock()
		return errClosed
	}
	select {
	case q.ch <- v:
	case <-ctx.Done():
		q.mu.RUnlock()
		return ctx.Err()
	}
	q.mu.RUnlock()
	select {
	case err := <-t.done:
		return err
	case <-ctx.Done():
		if t.Withdraw() {
			return ctx.Err()
		}
		return <-t.done // already taken: its outcome is ours
	}
}
