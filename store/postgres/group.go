package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store/handoff"
	"github.com/aftercare-clinic/aftercare/store/storage"
)

// Group commit defaults (Options.GroupSize, GroupWait, Committers),
// measured with `aftercare-load -store postgres` on the project's 2-core
// VM, shared with other work (see the README's PostgreSQL table).
const (
	// DefaultGroupSize is the most steps one transaction holds. It is
	// above the groups the load reaches here (36 steps on average in the
	// full scenario a, 256 patients sending at once), so it rarely binds;
	// a group that must be split (a step the server refuses) costs more
	// the larger it is.
	DefaultGroupSize = 256
	// DefaultGroupWait is how long steps that arrive while a group
	// commits wait for it to finish before another group starts beside
	// it (unless an eighth of a group waits already). An idle store starts
	// a group at once; under load the wait made groups about twice as
	// large (24 to 41 steps with one instance, 12 to 25 with two: fewer
	// commits for the server), at a cost of at most this much latency.
	DefaultGroupWait = 2 * time.Millisecond
	// DefaultCommitters is how many groups may be committing at once, each
	// on a connection of its own: while one waits for its WAL flush, the
	// next gathers the steps that arrived meanwhile. In a sweep of 2, 4
	// and 8 on two shared cores (noisy), 8 made groups smaller without
	// raising throughput.
	DefaultCommitters = 4
)

// retries is how often a group that hit a deadlock or a serialization
// failure is run again before it is halved like any failed group.
const retries = 5

// An apply is one Apply call waiting for its group.
type apply struct {
	st storage.Step
	fn func(storage.Input) (engine.Result, error)
	// applied is set by the committer before done is sent: whether the
	// step committed anything (false: dedupe key seen, timer gone, ErrSkip).
	applied bool
	// t says whether the committer put the apply in a group or its
	// caller's context ended first (see package handoff): an apply is
	// either run and reported, or dropped unrun.
	t *handoff.Ticket
}

// GroupStats counts the group transactions committed and the steps they
// held, so an operator (and the load test) can see how well steps are
// grouped.
type GroupStats struct {
	// Groups is the number of group transactions run (retries and steps
	// run alone after a failure included).
	Groups uint64
	// Steps is the number of Apply steps they held.
	Steps uint64
	// Retries counts groups run again after a deadlock or serialization
	// failure; Split counts steps taken out of a group and run alone.
	Retries, Split uint64
}

// GroupStats returns the counts since Open.
func (s *Store) GroupStats() GroupStats {
	c := s.group
	return GroupStats{Groups: c.groups.Load(), Steps: c.steps.Load(), Retries: c.retries.Load(), Split: c.split.Load()}
}

// committer gathers concurrent Apply calls into group transactions: one
// goroutine (loop) cuts groups from the queue and hands them to up to
// workers goroutines, each committing one group at a time on a connection
// of its own. When no group is committing, a step starts one at once;
// while one is, the steps arriving wait for it (a group takes every step
// waiting when it starts), and a second group starts beside it only once
// they have waited wait, or an eighth of a group's worth waits, or a step
// known to raise a red flag (urgent) waits. So an idle store adds no
// delay, and under load groups grow instead of multiplying.
//
// A patient's steps keep their order: a step whose patient already has a
// step in a group being committed, or earlier in the group being cut, is
// held back (with every later step of that patient) until that group is
// done, so two steps of one patient never share a group or race in two.
// Steps presenting an invite go one per group, since each locks its
// invite after the group's patient rows (see applyGroup for the lock
// order).
type committer struct {
	s       *Store
	max     int
	eager   int // steps waiting that start a group beside a running one at once
	wait    time.Duration
	workers int
	timeout time.Duration // a group attempt's deadline

	queue *handoff.Queue[*apply]
	done  chan struct{}

	groups, steps, retries, split atomic.Uint64
}

func newCommitter(s *Store, size int, wait time.Duration, workers int, timeout time.Duration) *committer {
	c := &committer{s: s, max: size, eager: max(1, size/8), wait: wait, workers: workers, timeout: timeout,
		queue: handoff.NewQueue[*apply](size), done: make(chan struct{})}
	go c.loop()
	return c
}

// do queues a and returns once its group is committed (nil) or failed.
// While a waits in the queue, the end of ctx withdraws it: do returns
// ctx.Err() and a.fn never runs. Once taken into a group, do waits for the
// group's outcome whatever ctx does, so a step that was committed is never
// reported as failed.
func (c *committer) do(ctx context.Context, a *apply) error {
	return c.queue.Do(ctx, a, a.t, ErrClosed)
}

// close stops taking steps, commits those already queued and waits for
// the committers to finish.
func (c *committer) close() {
	c.queue.Close()
	<-c.done
}

// loop cuts groups and starts them, one per free worker.
func (c *committer) loop() {
	defer close(c.done)
	finished := make(chan []*apply, c.workers)
	busy := map[engine.PatientID]bool{} // patients with a step in a running group
	var held []*apply                   // taken off the queue, waiting for their patient
	running := 0
	queue := c.queue.Items()
	// While a group commits, steps arriving wait for it for up to c.wait
	// (expired: they have) unless enough of them wait to fill a group of
	// their own: a second group beside the first costs the server a
	// commit more, worth it only for many steps or a long wait.
	var deadline <-chan time.Time
	expired := false
	release := func(g []*apply) {
		for _, a := range g {
			delete(busy, a.st.Patient)
		}
		running--
	}
	for {
		// Take in the groups that finished, without waiting.
	drain:
		for running > 0 {
			select {
			case g := <-finished:
				release(g)
			default:
				break drain
			}
		}
		if running < c.workers {
			waiting := len(held) + len(queue)
			if running == 0 || queue == nil || c.wait <= 0 || expired || waiting >= c.eager {
				var g []*apply
				g, held, queue = c.cut(held, queue, busy)
				if len(g) > 0 {
					for _, a := range g {
						busy[a.st.Patient] = true
					}
					running++
					deadline, expired = nil, false
					go func() {
						c.run(g)
						finished <- g
					}()
					continue
				}
			} else if waiting > 0 && deadline == nil {
				deadline = time.After(c.wait)
			}
		}
		if queue == nil && len(held) == 0 && running == 0 {
			return
		}
		// Wait for a group to finish, or (with a worker free) a new step.
		in := queue
		if running == c.workers {
			in = nil
		}
		select {
		case g := <-finished:
			release(g)
		case a, ok := <-in:
			if !ok {
				queue = nil
				continue
			}
			held = append(held, a)
			if urgent(a.st) {
				expired = true // a red flag waits for no one
			}
		case <-deadline:
			deadline, expired = nil, true
		}
	}
}

// urgent reports whether a step is known, before it commits, to raise an
// escalation or send an alert (its prepared result says so): such a step
// starts a group at once instead of waiting for the one committing.
func urgent(st storage.Step) bool {
	pr := st.Prepared
	if pr == nil {
		return false
	}
	if pr.Result.Escalation != nil {
		return true
	}
	for _, m := range pr.Result.Messages {
		if m.Kind.Priority() == 0 {
			return true
		}
	}
	return false
}

// cut takes a group off held (first, in order) and then what waits in
// the queue, up to max steps, without waiting for more. It returns the
// group, the steps still held, and the queue (nil once closed).
func (c *committer) cut(held []*apply, queue <-chan *apply, busy map[engine.PatientID]bool) (group, rest []*apply, q <-chan *apply) {
	// Patients in this group, or with a step held back in this cut (so
	// their later steps are held back too), and the group's dedupe keys.
	in, blocked := map[engine.PatientID]bool{}, map[engine.PatientID]bool{}
	keys := map[string]bool{}
	invite := false
	take := func(a *apply) {
		if a.t.Abandoned() {
			return
		}
		p, key := a.st.Patient, a.st.Dedupe
		if len(group) >= c.max || busy[p] || in[p] || blocked[p] || (key != "" && keys[key]) || (invite && a.st.Invite != "") {
			blocked[p] = true
			rest = append(rest, a)
			return
		}
		if !a.t.Take() {
			return // abandoned meanwhile
		}
		group = append(group, a)
		in[p] = true
		if key != "" {
			keys[key] = true
		}
		invite = invite || a.st.Invite != ""
	}
	for _, a := range held {
		take(a)
	}
	for len(group) < c.max {
		select {
		case a, ok := <-queue:
			if !ok {
				return group, rest, nil
			}
			take(a)
		default:
			return group, rest, queue
		}
	}
	return group, rest, queue
}

// run commits g and reports each step's outcome. A step whose own reads
// or fn fail is taken out and run alone, so its error is its own, and the
// rest run again together; a deadlock or serialization failure runs the
// group again; a failure of the group's writes (written table by table,
// so not one step's) splits the group in two halves, each run again, so
// the step at fault ends alone and the others commit in groups. Only a
// failure that is no step's (no connection, or a commit whose outcome is
// unknown: running the steps again could apply them twice) fails every
// step of the group with its error.
func (c *committer) run(g []*apply) {
	for attempt := 0; len(g) > 0; attempt++ {
		c.groups.Add(1)
		c.steps.Add(uint64(len(g)))
		err := c.attempt(g)
		var se *stepError
		var ce *commitError
		var ge *groupError
		switch {
		case err == nil:
			for _, a := range g {
				a.t.Finish(nil)
			}
			return
		case errors.As(err, &ce) || errors.As(err, &ge):
			if ge != nil {
				err = ge.err
			}
			for _, a := range g {
				a.applied = false
				a.t.Finish(err)
			}
			return
		case retryable(err) && attempt < retries:
			c.retries.Add(1)
		case len(g) == 1:
			g[0].applied = false
			g[0].t.Finish(unwrapStep(err))
			return
		case errors.As(err, &se):
			c.split.Add(1)
			c.run([]*apply{g[se.i]})
			g = append(g[:se.i:se.i], g[se.i+1:]...)
			attempt = -1
		default:
			c.split.Add(1)
			half := len(g) / 2
			c.run(g[:half])
			c.run(g[half:])
			return
		}
	}
}

// attempt runs g once in one transaction, under a deadline of its own: no
// caller's context, since a group serves many callers.
func (c *committer) attempt(g []*apply) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	for _, a := range g {
		a.applied = false
	}
	return c.s.applyGroup(ctx, g)
}

// stepError is the failure of one step of a group (its reads, fn or
// writes), i its index in the group.
type stepError struct {
	i   int
	err error
}

func (e *stepError) Error() string { return e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

// commitError is a COMMIT whose outcome is unknown (no answer from the
// server): the group may or may not have been committed.
type commitError struct{ err error }

func (e *commitError) Error() string { return fmt.Sprintf("commit (outcome unknown): %v", e.err) }
func (e *commitError) Unwrap() error { return e.err }

// groupError is a failure of a group that no step caused and that
// running fewer steps would not mend (no connection to the server).
type groupError struct{ err error }

func (e *groupError) Error() string { return e.err.Error() }
func (e *groupError) Unwrap() error { return e.err }

// unwrapStep returns a step's own error without its place in a group.
func unwrapStep(err error) error {
	var se *stepError
	if errors.As(err, &se) {
		return se.err
	}
	return err
}

// retryable reports whether err is a deadlock or serialization failure
// (or errLockRace), after which the same transaction may succeed when run
// again.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.Is(err, errLockRace) || errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// call runs fn, turning a panic into an error so one bad step cannot stop
// a committer (and with it every other patient's steps).
func call(fn func(storage.Input) (engine.Result, error), in storage.Input) (res engine.Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic in step: %v", r)
		}
	}()
	return fn(in)
}
