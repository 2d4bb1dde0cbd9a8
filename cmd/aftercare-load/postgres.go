package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/aftercare-clinic/aftercare/loadtest"
	"github.com/aftercare-clinic/aftercare/store/postgres"
)

// The -store postgres option: the scenarios that measure the store run a
// second time on PostgreSQL, beside bbolt in the same run and on the same
// machine, with the server's own ceilings measured in between.
//
//	a/pg    durable throughput, one instance         target ≥ 8,000 msg/s
//	a/pg2   the same with two instances on one database
//	c/pg    paced 1,000 msg/s, p99 received → reply queued   < 20 ms
//	e/pg    the red flags during a check-in drain (scenario e)
//	pg      PostgreSQL alone: one transaction per message, and batched
//
// The server is the one AFTERCARE_POSTGRES_DSN names (each scenario gets a
// database of its own, created and dropped; the role needs CREATEDB), or,
// without it, a throwaway server from Debian's postgresql package with its
// durable defaults (fsync on), on a unix socket only.

// postgresSteps returns the PostgreSQL scenarios among those chosen
// (a covers a/pg and a/pg2; c, e likewise; the ceilings always run). The
// backend is started by the first step and closed by the returned func.
func postgresSteps(ctx context.Context, run map[string]bool, tp loadtest.ThroughputConfig, pc loadtest.PacedConfig, bc loadtest.BurstConfig, short bool) ([]step, func() error) {
	var b *loadtest.Backend
	var berr error
	backend := func() (*loadtest.Backend, error) {
		if b == nil && berr == nil {
			b, berr = loadtest.PostgresBackend(os.Getenv(postgres.DSNEnv))
		}
		return b, berr
	}
	label := func(r loadtest.Result, key string) loadtest.Result {
		r.Scenario = key
		r.Name += " (PostgreSQL)"
		return r
	}
	var steps []step
	steps = append(steps, step{"pg", func() (loadtest.Result, error) {
		be, err := backend()
		if err != nil {
			return loadtest.Result{}, err
		}
		d := 5 * time.Second
		if short {
			d = 2 * time.Second
		}
		return loadtest.PostgresCeilings(ctx, loadtest.PostgresCeilingConfig{Backend: be, Duration: d})
	}})
	if run["a"] {
		for _, n := range []int{1, 2} {
			key := "a/pg"
			if n == 2 {
				key = "a/pg2"
			}
			steps = append(steps, step{key, func() (loadtest.Result, error) {
				be, err := backend()
				if err != nil {
					return loadtest.Result{}, err
				}
				c := tp
				c.Backend = be
				r, err := loadtest.Instances(ctx, c, n)
				return label(r, key), err
			}})
		}
	}
	if run["c"] {
		steps = append(steps, step{"c/pg", func() (loadtest.Result, error) {
			be, err := backend()
			if err != nil {
				return loadtest.Result{}, err
			}
			c := pc
			c.Backend = be
			r, err := loadtest.Paced(ctx, c)
			return label(r, "c/pg"), err
		}})
	}
	if run["e"] {
		steps = append(steps, step{"e/pg", func() (loadtest.Result, error) {
			be, err := backend()
			if err != nil {
				return loadtest.Result{}, err
			}
			c := bc
			c.Backend = be
			r, err := loadtest.Burst(ctx, c)
			return label(r, "e/pg"), err
		}})
	}
	return steps, func() error {
		if b == nil {
			return nil
		}
		if err := b.Close(); err != nil {
			return fmt.Errorf("postgres backend: %w", err)
		}
		return nil
	}
}
