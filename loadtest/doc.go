// Package loadtest measures Aftercare's limits by driving the whole pipeline
// in-process: the engine with the real triage rules, the bbolt store on a
// real file with fsync on, the service with its scheduler, and the outbox
// dispatcher delivering to a fake platform. Simulated patients, each with a
// recorded visit and consent to check-ins, send realistic messages: workout
// readiness questions and their button answers, aftercare questions, normal
// after-effects and a few red flags.
//
// # Basics
//
// Each scenario is a function that returns a Result with its figures and
// the checks against the targets of issue 7:
//
//	a, err := loadtest.GroupCommit(ctx, loadtest.ThroughputConfig{Dir: dir})
//	b, err := loadtest.TxPerMessage(ctx, loadtest.ThroughputConfig{Dir: dir, Messages: 10000})
//	ratio, text := loadtest.CommitRatio(a, b) // reported, not a target
//	c, err := loadtest.Paced(ctx, loadtest.PacedConfig{Dir: dir})
//	d, err := loadtest.Timers(ctx, loadtest.TimersConfig{Dir: dir})
//	e, err := loadtest.Burst(ctx, loadtest.BurstConfig{Dir: dir})
//
// Scenarios return an error only when they could not run; a missed target
// is a Check with OK false.
//
// The command cmd/aftercare-load runs them all and prints a table and a
// JSON summary; its -short flag runs the sizes CI uses.
//
// # What is measured
//
// Latency is measured from the moment Service.Receive is called (or, in the
// paced scenario, from the moment the message was scheduled to arrive, so a
// stall is counted against every message it delays) until Receive returns,
// which is when the patient's new state, the reply and everything else the
// step caused are committed and fsynced. Memory is the peak of the Go heap
// in use and of the runtime's Sys, sampled every 50 ms, and the process's
// peak resident set (VmHWM), which is reset at the start of each scenario.
//
// # Read against the machine
//
// With ThroughputConfig.Ceilings, a throughput scenario also measures,
// after its run, what it is read against: the bbolt batch ceiling
// (BoltCeiling: bbolt alone committing records of the sizes the run wrote,
// StepShape, in batches of the size it committed, with the same fsync) and
// the pure-work ceiling (PureWork: the engine with the real protocol and
// triage, and the store's encodings, on every CPU, without a store). The
// scenario reports its share of each, and its cost per message: the whole
// process's CPU time (user and system, getrusage), heap allocations and
// bytes written (write system calls, from /proc/self/io on Linux: bbolt's
// pages, a figure the machine's other load does not move) divided by the
// messages; the bbolt ceiling reports its bytes written too. Scenario a must reach TargetCeilingShare of the
// bbolt ceiling; a's throughput over b's is reported, not a target, since
// it moves with the disk's fsync time.
//
// # Caveats
//
// The figures depend on the machine, above all on the disk's fsync
// latency: the one-transaction-per-message baseline is bound by it, the
// group-commit figure by CPU. The load clinic has no quiet hours and is
// always open, so check-ins are never deferred by the time of day the load
// runs at. Scenarios never log message text.
package loadtest
