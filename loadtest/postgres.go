package loadtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"
	"github.com/aftercare-clinic/aftercare/store/postgres"
)

// TargetPostgresMessagesPerSecond is issue 17's goal for durable
// throughput on PostgreSQL, every step committed before its reply is
// queued.
const TargetPostgresMessagesPerSecond = 8000

// Instances is scenario a on a shared database: n service instances
// (each with its own store connection pool, scheduler and dispatcher, as n
// processes would have) on one new database of c.Backend, and the
// senders' messages spread over them, a patient's consecutive messages
// going to different instances. Every message must still be applied once
// and in order (the patient's row lock) and answered.
func Instances(ctx context.Context, c ThroughputConfig, n int) (Result, error) {
	c = c.withDefaults()
	r := Result{Scenario: "a", Name: fmt.Sprintf("durable throughput, %d instances on one database", n)}
	if c.Backend == nil {
		return r, errors.New("loadtest: Instances needs a Backend that several instances can share")
	}
	open, err := c.Backend.Instances(ctx)
	if err != nil {
		return r, err
	}
	ps := make([]*Pipeline, n)
	for i := range ps {
		if ps[i], err = Start(ctx, Options{Path: fmt.Sprintf("%s instance %d", c.Backend.Name, i+1), Open: open}); err != nil {
			return r, err
		}
		defer ps[i].Close()
	}
	t := time.Now()
	if err := Enroll(ctx, ps[0].Service, c.Patients, 256, time.Now().Add(-2*time.Hour)); err != nil {
		return r, err
	}
	enroll := time.Since(t)
	svcs := make([]*service.Service, n)
	for i, p := range ps {
		svcs[i] = p.Service
	}
	mw := watchMemory()
	before := groupStats(ps)
	cost := startCost() // this process only: the server's CPU is not in it
	lat, sentBy, elapsed, err := driveMany(ctx, svcs, c.Patients, c.Messages, c.Senders, c.Seed)
	perMsg := cost.per(c.Messages)
	after := groupStats(ps)
	r.Memory = mw.finish()
	if err != nil {
		return r, err
	}
	r.Count, r.Seconds = c.Messages, elapsed.Seconds()
	r.PerSecond = float64(c.Messages) / elapsed.Seconds()
	r.Latency = latencyOf(lat)
	perMsg.figures(&r)
	r.figure("instances", float64(n), "")
	r.figure("patients", float64(c.Patients), "")
	r.figure("senders", float64(c.Senders), "goroutines")
	r.figure("connections per instance (pool)", float64(c.Backend.PoolSize), "")
	if n := after.Groups - before.Groups; n > 0 {
		r.figure("group transactions", float64(n), "all instances")
		r.figure("steps per group transaction", float64(after.Steps-before.Steps)/float64(n), "mean")
		r.figure("groups run again (deadlock, serialization failure)", float64(after.Retries-before.Retries), "")
	}
	r.figure("enroll time", enroll.Seconds(), "s")
	delivered := 0
	fakes := make([]*FakeSender, n)
	for i, p := range ps {
		d, err := p.Stop()
		if err != nil {
			return r, err
		}
		delivered += d
		fakes[i], _ = p.Sender.(*FakeSender)
	}
	r.figure("delivered by the dispatchers during run", float64(delivered), "messages")
	if err := verifyShared(&r, ps[0].DB, fakes, sentBy); err != nil {
		return r, err
	}
	r.check("throughput", fmt.Sprintf("≥ %d msg/s", TargetPostgresMessagesPerSecond), fmt.Sprintf("%.0f msg/s", r.PerSecond), r.PerSecond >= TargetPostgresMessagesPerSecond)
	return r, nil
}

// groupStats sums the PostgreSQL stores' group commit counts.
func groupStats(ps []*Pipeline) postgres.GroupStats {
	var sum postgres.GroupStats
	for _, p := range ps {
		if s, ok := p.DB.(*postgres.Store); ok {
			g := s.GroupStats()
			sum.Groups += g.Groups
			sum.Steps += g.Steps
			sum.Retries += g.Retries
			sum.Split += g.Split
		}
	}
	return sum
}

// verifyShared is verify for several instances on one database: the
// answers were queued there or sent by any instance's fake sender.
func verifyShared(r *Result, db DB, fakes []*FakeSender, sentBy []int) error {
	queued := map[engine.PatientID]int{}
	out, err := db.OutboxAll(1 << 30)
	if err != nil {
		return err
	}
	for _, m := range out {
		queued[m.Destination()]++
	}
	badState, noReply := 0, 0
	for i, n := range sentBy {
		st, found, err := db.State(Patient(i))
		if err != nil {
			return err
		}
		if !found || st.Handled != 1+n {
			badState++
		}
		got := queued[Patient(i)]
		for _, f := range fakes {
			if f != nil {
				got += f.Sent(Patient(i))
			}
		}
		if got < n {
			noReply++
		}
	}
	r.figure("outbox depth after run", float64(len(out)), "messages")
	r.check("every step committed once, in order", "0 lost or doubled", fmt.Sprintf("%d", badState), badState == 0)
	r.check("every message answered", "0 without reply", fmt.Sprintf("%d", noReply), noReply == 0)
	return nil
}

// PostgresCeilingConfig sizes the PostgreSQL ceiling measurement.
type PostgresCeilingConfig struct {
	// Backend is the server measured (required).
	Backend *Backend
	// Duration is how long each of the two loads runs (default 5 s).
	Duration time.Duration
	// Workers is the number of connections writing at once (default 32).
	Workers int
	// Batch is how many messages' writes one batched transaction holds
	// (default 100).
	Batch int
}

// PostgresCeilings measures what the PostgreSQL server itself sustains
// here, as pgbench would, for writes of the size of one message's step:
// the upsert of a 1 KiB patient state and four 300-byte rows (the reply
// queued, two transcript lines, the update's dedupe key). Once in one
// transaction per message (each commit waits for its WAL flush), once in
// transactions of Batch messages sent as one pipelined batch. Aftercare's
// steps cannot go faster than the first on a store that commits each step
// on its own, and no store on this server faster than the second.
func PostgresCeilings(ctx context.Context, c PostgresCeilingConfig) (Result, error) {
	if c.Duration <= 0 {
		c.Duration = 5 * time.Second
	}
	if c.Workers <= 0 {
		c.Workers = 32
	}
	if c.Batch <= 0 {
		c.Batch = 100
	}
	r := Result{Scenario: "pg", Name: "PostgreSQL alone: writes of one step's size"}
	if c.Backend == nil {
		return r, errors.New("loadtest: PostgresCeilings needs a Backend")
	}
	dsn, err := c.Backend.NewDatabase(ctx)
	if err != nil {
		return r, err
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return r, err
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE states (id text PRIMARY KEY, state bytea);
		CREATE TABLE rows (id bigserial PRIMARY KEY, owner text NOT NULL, body bytea NOT NULL)`); err != nil {
		conn.Close(ctx)
		return r, err
	}
	conn.Close(ctx)
	state, row := make([]byte, 1024), make([]byte, 300)
	queue := func(b *pgx.Batch, w, k int) {
		id := fmt.Sprintf("p%d-%d", w, k%500)
		b.Queue(`INSERT INTO states (id, state) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET state = excluded.state`, id, state)
		for range 4 {
			b.Queue(`INSERT INTO rows (owner, body) VALUES ($1, $2)`, id, row)
		}
	}
	run := func(perTx int) (float64, *Latency, error) {
		var total atomic.Int64
		lats := make([][]time.Duration, c.Workers)
		errs := make([]error, c.Workers)
		var wg sync.WaitGroup
		start := time.Now()
		deadline := start.Add(c.Duration)
		for w := range c.Workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				conn, err := pgx.Connect(ctx, dsn)
				if err != nil {
					errs[w] = err
					return
				}
				defer conn.Close(context.Background())
				for k := 0; time.Now().Before(deadline) && ctx.Err() == nil; k++ {
					b := &pgx.Batch{}
					b.Queue("BEGIN")
					for m := range perTx {
						queue(b, w, k*perTx+m)
					}
					b.Queue("COMMIT")
					t := time.Now()
					if err := conn.SendBatch(ctx, b).Close(); err != nil {
						errs[w] = err
						return
					}
					lats[w] = append(lats[w], time.Since(t))
					total.Add(int64(perTx))
				}
			}()
		}
		wg.Wait()
		var all []time.Duration
		for _, l := range lats {
			all = append(all, l...)
		}
		return float64(total.Load()) / time.Since(start).Seconds(), latencyOf(all), errors.Join(errs...)
	}
	single, sl, err := run(1)
	if err != nil {
		return r, err
	}
	batched, bl, err := run(c.Batch)
	if err != nil {
		return r, err
	}
	r.Count, r.Seconds, r.PerSecond = 0, 2*c.Duration.Seconds(), batched
	r.figure("connections", float64(c.Workers), "")
	r.figure("one transaction per message", single, "msg/s")
	if sl != nil {
		r.figure("  commit latency p50 / p99", sl.P50, fmt.Sprintf("ms / %.2f ms", sl.P99))
	}
	r.figure(fmt.Sprintf("%d messages per transaction", c.Batch), batched, "msg/s")
	if bl != nil {
		r.figure("  commit latency p50 / p99", bl.P50, fmt.Sprintf("ms / %.2f ms", bl.P99))
	}
	return r, nil
}
