package store

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/aftercare-clinic/aftercare/store/handoff"
	bolt "go.etcd.io/bbolt"
)

// A write is one function waiting to run in a group transaction. Its
// ticket says whether the loop took it into a group or its caller's context
// ended first (see package handoff): it is either run and reported, or
// dropped unrun.
type write struct {
	fn func(*bolt.Tx) error
	t  *handoff.Ticket
}

// committer runs writes in group transactions: one goroutine takes every
// write queued while the previous commit ran and commits them together,
// with one pair of fsyncs for all.
//
// bbolt's own DB.Batch cuts groups by time (MaxBatchDelay) instead: under
// load its groups queue behind each other for the writer lock, each holding
// only what arrived in its delay window, and every group pays its own
// fsyncs. Here a group is cut when the writer becomes free, so it grows
// with the load and adds no delay when the store is idle. Commits start at
// least Options.CommitInterval apart, which bounds the fsync rate under
// moderate load: a cloud disk that allows a few thousand I/O operations a
// second stalls for hundreds of milliseconds when a commit per message
// exceeds that.
type committer struct {
	db       *bolt.DB
	max      int
	interval time.Duration // least time between the starts of two commits

	queue *handoff.Queue[write]
	done  chan struct{}

	commits, writes atomic.Uint64 // for CommitStats
}

// CommitStats counts the group transactions run and the writes they held,
// so an operator (and the load test) can see how well writes are grouped.
type CommitStats struct {
	// Commits is the number of group transactions run.
	Commits uint64
	// Writes is the number of writes they held (Apply steps and outbox
	// updates).
	Writes uint64
}

// CommitStats returns the counts since Open.
func (s *Store) CommitStats() CommitStats {
	return CommitStats{Commits: s.commit.commits.Load(), Writes: s.commit.writes.Load()}
}

func newCommitter(db *bolt.DB, max int, interval time.Duration) *committer {
	c := &committer{db: db, max: max, interval: interval, queue: handoff.NewQueue[write](max), done: make(chan struct{})}
	go c.loop()
	return c
}

// do runs fn in a group transaction and returns once the group is committed
// (nil) or failed. fn may run more than once: when another write of its
// group fails, the group is rolled back and run again without it.
//
// While the write waits in the queue, the end of ctx withdraws it: do
// returns ctx.Err() and fn never runs. Once the committer has taken the
// write into a group, do waits for that group's outcome whatever ctx does,
// so a write that was committed is never reported as failed.
func (c *committer) do(ctx context.Context, fn func(*bolt.Tx) error) error {
	t := handoff.NewTicket()
	return c.queue.Do(ctx, write{fn: fn, t: t}, t, ErrClosed)
}

// close stops taking writes, commits those already queued and waits for
// the loop to end.
func (c *committer) close() {
	c.queue.Close()
	<-c.done
}

func (c *committer) loop() {
	defer close(c.done)
	group := make([]write, 0, c.max)
	var last time.Time
	for first := range c.queue.Items() {
		// Under moderate load, wait out the rest of the interval since the
		// last commit began, so writes arriving meanwhile share this one.
		// When idle, last is long past and nothing waits; under heavy load
		// a commit outlasts the interval, and nothing waits either.
		if wait := c.interval - time.Since(last); wait > 0 {
			time.Sleep(wait)
		}
		last = time.Now()
		group = group[:0]
		if first.t.Take() {
			group = append(group, first)
		}
	fill:
		for len(group) < c.max {
			select {
			case w, ok := <-c.queue.Items():
				if !ok {
					break fill
				}
				if w.t.Take() {
					group = append(group, w)
				}
			default:
				break fill
			}
		}
		if len(group) == 0 {
			continue // every write taken was abandoned by its caller
		}
		c.commits.Add(1)
		c.writes.Add(uint64(len(group)))
		c.run(group)
		clear(group) // drop the closures for the collector
	}
}

// run commits group in one transaction. A write whose fn fails is taken out
// and run alone, so its error is its own; the rest are run again together.
func (c *committer) run(group []write) {
	for len(group) > 0 {
		failed := -1
		err := c.db.Update(func(tx *bolt.Tx) error {
			fillAppended(tx)
			for i, w := range group {
				if err := call(w.fn, tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed < 0 {
			for _, w := range group {
				w.t.Finish(err)
			}
			return
		}
		w := group[failed]
		if len(group) == 1 {
			w.t.Finish(err)
			return
		}
		w.t.Finish(c.db.Update(func(tx *bolt.Tx) error { fillAppended(tx); return call(w.fn, tx) }))
		group = append(group[:failed:failed], group[failed+1:]...)
	}
}

// AppendFillPercent is how full bbolt fills the pages it splits in the
// buckets a step appends to at the end of their key space (appendBuckets).
// bbolt's default, half full, suits keys inserted anywhere; appended keys
// never return to a page left half full, so at the default those buckets
// took twice the pages, and a commit wrote twice the pages for them. The
// load's bbolt ceiling fills the same buckets the same way.
const AppendFillPercent = 0.95

// appendBuckets are the buckets whose keys a step appends at the end:
// sequence-keyed records (transcript, audit, escalations), the outbox
// (sequence within platform and priority) and the dedupe keys (platform
// update IDs, which increase).
var appendBuckets = [][]byte{bTranscript, bAudit, bEscalations, bOutbox, bDedupe}

// fillAppended sets AppendFillPercent on tx's appendBuckets (bbolt keeps
// the setting on the transaction's bucket handles, not in the file).
func fillAppended(tx *bolt.Tx) {
	for _, name := range appendBuckets {
		if b := tx.Bucket(name); b != nil {
			b.FillPercent = AppendFillPercent
		}
	}
}

// call runs fn, turning a panic into an error so one bad write cannot stop
// the committer (and with it every other patient's writes).
func call(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic in store write: %v", r)
		}
	}()
	return fn(tx)
}
