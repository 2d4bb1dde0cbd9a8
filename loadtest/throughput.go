package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"
	"github.com/aftercare-clinic/aftercare/store"
)

// Targets of issue 7 ("Load, measured").
const (
	// TargetMessagesPerSecond is the durable throughput with group commits.
	TargetMessagesPerSecond = 5000
	// TargetP99 is the p99 from message received to reply queued at
	// TargetPacedRate.
	TargetP99 = 20 * time.Millisecond
	// TargetPacedRate is the arrival rate of the paced scenario, messages/s.
	TargetPacedRate = 1000
	// TargetResume is the time to open and resume a store of a million
	// scheduled check-ins.
	TargetResume = 2 * time.Second
	// TargetResumeMiB is the memory allowed for it.
	TargetResumeMiB = 300
	// TargetBurstShare is the share of the configured platform rate a burst
	// of check-ins must reach.
	TargetBurstShare = 0.95
)

// ThroughputConfig sizes scenarios a and b. Zero values take the defaults.
type ThroughputConfig struct {
	// Dir holds the database file (required).
	Dir string
	// Patients is the number of simulated patients (default 10,000).
	Patients int
	// Messages is the number of messages sent (default 100,000).
	Messages int
	// Senders is the number of goroutines sending at once, each for its own
	// patients (default 128).
	Senders int
	// Seed makes the message mix repeatable (default 1).
	Seed uint64
	// CPUProfile, when set, receives a CPU profile of the measured part
	// (the messages, not the enrolment before them).
	CPUProfile io.Writer
	// Ceilings, when set, measures after the run what the scenario is read
	// against: bbolt alone committing records of the sizes the run wrote,
	// in batches of the size it committed, and (PureWork) the engine and
	// encoding without a store. CeilingSteps bounds the steps the bbolt
	// ceiling commits (default: Messages). Only on bbolt: with a Backend,
	// the server's own ceilings are PostgresCeilings.
	Ceilings     bool
	CeilingSteps int
	// Backend is the store (nil: bbolt in Dir).
	Backend *Backend
}

func (c ThroughputConfig) withDefaults() ThroughputConfig {
	if c.Patients <= 0 {
		c.Patients = 10000
	}
	if c.Messages <= 0 {
		c.Messages = 100000
	}
	if c.Senders <= 0 {
		c.Senders = 128
	}
	c.Senders = min(c.Senders, c.Patients)
	if c.Seed == 0 {
		c.Seed = 1
	}
	return c
}

// GroupCommit is scenario a: Senders goroutines send Messages messages as
// fast as the service takes them, with the production store options (fsync
// on; each commit takes every step queued while the previous one ran, up
// to 1000). Each Receive returns only once its step is committed.
func GroupCommit(ctx context.Context, c ThroughputConfig) (Result, error) {
	r, err := throughput(ctx, c, store.Options{}, "a.db")
	r.Scenario, r.Name = "a", "durable throughput, group commit"
	if err == nil {
		r.check("throughput", fmt.Sprintf("≥ %d msg/s", TargetMessagesPerSecond), fmt.Sprintf("%.0f msg/s", r.PerSecond), r.PerSecond >= TargetMessagesPerSecond)
	}
	return r, err
}

// TxPerMessage is scenario b, the baseline of scenario a: the same load,
// but the store commits every step in a transaction of its own, with its
// own fsync (MaxBatchSize 1).
func TxPerMessage(ctx context.Context, c ThroughputConfig) (Result, error) {
	r, err := throughput(ctx, c, store.Options{MaxBatchSize: 1}, "b.db")
	r.Scenario, r.Name = "b", "one transaction per message"
	return r, err
}

// CommitRatio returns scenario a's throughput over scenario b's, and the
// two for people. It is reported, not a target: b waits for one fsync per
// message, so the ratio moves with the disk's fsync time (a fast disk
// lowers it) and says more about the disk than about the code. The
// figures read against the machine are the shares of the ceilings (see
// BoltCeiling and PureWork).
func CommitRatio(a, b Result) (float64, string) {
	ratio := 0.0
	if b.PerSecond > 0 {
		ratio = a.PerSecond / b.PerSecond
	}
	return ratio, fmt.Sprintf("%.1fx (%.0f / %.0f msg/s)", ratio, a.PerSecond, b.PerSecond)
}

func throughput(ctx context.Context, c ThroughputConfig, so store.Options, file string) (Result, error) {
	c = c.withDefaults()
	var r Result
	if c.Dir == "" {
		return r, errors.New("loadtest: Dir is required")
	}
	path := filepath.Join(c.Dir, file)
	if err := removeDB(path); err != nil {
		return r, err
	}
	p, err := Start(ctx, Options{Path: path, Store: so, Open: c.Backend.open()})
	if err != nil {
		return r, err
	}
	defer p.Close()
	t := time.Now()
	if err := Enroll(ctx, p.Service, c.Patients, 256, time.Now().Add(-2*time.Hour)); err != nil {
		return r, err
	}
	enroll := time.Since(t)

	var sizesBefore []store.BucketSize
	if p.Store != nil {
		if sizesBefore, err = p.Store.RecordSizes(); err != nil {
			return r, err
		}
	}
	mw := watchMemory()
	before := commitStats(p)
	if c.CPUProfile != nil {
		if err := pprof.StartCPUProfile(c.CPUProfile); err != nil {
			return r, err
		}
	}
	cost := startCost()
	lat, sentBy, elapsed, err := Drive(ctx, p.Service, c.Patients, c.Messages, c.Senders, c.Seed)
	perMsg := cost.per(c.Messages)
	if c.CPUProfile != nil {
		pprof.StopCPUProfile()
	}
	after := commitStats(p)
	r.Memory = mw.finish()
	if err != nil {
		return r, err
	}
	if n := after.Commits - before.Commits; n > 0 {
		r.figure("commits", float64(n), "transactions")
		r.figure("writes per commit", float64(after.Writes-before.Writes)/float64(n), "mean")
	}
	r.Count, r.Seconds = c.Messages, elapsed.Seconds()
	r.PerSecond = float64(c.Messages) / elapsed.Seconds()
	r.Latency = latencyOf(lat)
	perMsg.figures(&r)
	r.figure("patients", float64(c.Patients), "")
	r.figure("senders", float64(c.Senders), "goroutines")
	r.figure("enroll time", enroll.Seconds(), "s")
	delivered, err := p.Stop()
	if err != nil {
		return r, err
	}
	r.figure("delivered by dispatcher during run", float64(delivered), "messages")
	if err := verify(&r, p, sentBy); err != nil {
		return r, err
	}
	if !c.Ceilings || p.Store == nil {
		return r, nil
	}
	sizesAfter, err := p.Store.RecordSizes()
	if err != nil {
		return r, err
	}
	batch := 1
	if n := after.Commits - before.Commits; n > 0 {
		batch = max(1, int(float64(after.Writes-before.Writes)/float64(n)+0.5))
	}
	if err := p.Close(); err != nil {
		return r, err
	}
	return r, ceilings(ctx, &r, c, perMsg, StepShape(sizesBefore, sizesAfter, c.Messages), batch)
}

// ceilings measures the bbolt batch ceiling (and, for group commits, the
// pure-work ceiling) and adds them to r with r's fraction of each.
func ceilings(ctx context.Context, r *Result, c ThroughputConfig, perMsg Cost, shape []RecordShape, batch int) error {
	steps := c.Messages
	if c.CeilingSteps > 0 {
		steps = min(steps, c.CeilingSteps)
	}
	r.Shape = shape
	bc, err := BoltCeiling(ctx, CeilingConfig{Dir: c.Dir, Patients: c.Patients, Steps: steps, Batch: batch, Shape: shape})
	if err != nil {
		return err
	}
	r.figure("bbolt batch ceiling", bc.PerSecond, fmt.Sprintf("msg/s (bbolt alone, same records, %d per commit, fsync on)", batch))
	r.figure("bbolt ceiling CPU per message", us(bc.CPU), "µs")
	if bc.Written > 0 {
		r.figure("bbolt ceiling bytes written per message", bc.Written, "B")
	}
	share := r.PerSecond / bc.PerSecond
	r.figure("share of bbolt batch ceiling", 100*share, "%")
	if batch > 1 {
		r.check("share of bbolt batch ceiling", fmt.Sprintf("≥ %.0f %%", 100*TargetCeilingShare), fmt.Sprintf("%.0f %% (%.0f of %.0f msg/s)", 100*share, r.PerSecond, bc.PerSecond), share >= TargetCeilingShare)
		pw, err := PureWork(ctx, c.Patients, c.Messages, c.Seed)
		if err != nil {
			return err
		}
		r.figure("pure-work ceiling", pw.PerSecond, fmt.Sprintf("msg/s (engine, triage and encoding, no store, %d goroutines)", runtime.GOMAXPROCS(0)))
		r.figure("pure-work CPU per message", us(pw.CPU), "µs")
		r.figure("share of pure-work ceiling", 100*r.PerSecond/pw.PerSecond, "%")
		if perMsg.CPU > 0 {
			r.figure("pure-work share of CPU per message", 100*float64(pw.CPU)/float64(perMsg.CPU), "%")
		}
	}
	return nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// Drive sends n messages to svc from senders goroutines. Goroutine g plays
// the patients g, g+senders, g+2*senders, ... below patients, in turn, so
// a patient's messages are sent one after the other, as a person would. It
// returns each message's latency (Receive call to return), how many
// messages each patient sent, and the time it all took.
func Drive(ctx context.Context, svc *service.Service, patients, n, senders int, seed uint64) ([]time.Duration, []int, time.Duration, error) {
	return driveMany(ctx, []*service.Service{svc}, patients, n, senders, seed)
}

// driveMany is Drive over several instances: message k of a sender goes
// to instance k mod len(svcs), so a patient's messages alternate between
// instances, one after the other as a person sends them.
func driveMany(ctx context.Context, svcs []*service.Service, patients, n, senders int, seed uint64) ([]time.Duration, []int, time.Duration, error) {
	senders = max(1, min(senders, patients))
	lat := make([]time.Duration, n)
	sentBy := make([]int, patients)
	errs := make([]error, senders)
	var wg sync.WaitGroup
	start := time.Now()
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sim := NewSim(seed<<16 + uint64(g))
			mine := (patients - g + senders - 1) / senders
			turn := 0
			for k := g; k < n; k += senders {
				i := g + (turn%mine)*senders
				svc := svcs[turn%len(svcs)]
				turn++
				in := sim.Next(i)
				t := time.Now()
				if err := svc.Receive(ctx, in); err != nil {
					errs[g] = err
					return
				}
				lat[k] = time.Since(t)
				sentBy[i]++
			}
		}()
	}
	wg.Wait()
	return lat, sentBy, time.Since(start), errors.Join(errs...)
}

// verify checks that every message was applied exactly once (the
// patient's Handled count is the visit plus the messages it sent) and got
// an answer that is queued in the outbox or was delivered.
func verify(r *Result, p *Pipeline, sentBy []int) error {
	queued := map[engine.PatientID]int{}
	out, err := p.DB.OutboxAll(1 << 30)
	if err != nil {
		return err
	}
	for _, m := range out {
		queued[m.Destination()]++
	}
	fake, _ := p.Sender.(*FakeSender)
	badState, noReply := 0, 0
	for i, n := range sentBy {
		st, found, err := p.DB.State(Patient(i))
		if err != nil {
			return err
		}
		if !found || st.Handled != 1+n {
			badState++
		}
		got := queued[Patient(i)]
		if fake != nil {
			got += fake.Sent(Patient(i))
		}
		if got < n {
			noReply++
		}
	}
	r.figure("outbox depth after run", float64(len(out)), "messages")
	r.check("every step committed once", "0 lost or doubled", fmt.Sprintf("%d", badState), badState == 0)
	r.check("every message answered", "0 without reply", fmt.Sprintf("%d", noReply), noReply == 0)
	return nil
}
