package loadtest

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"
)

// PacedConfig sizes scenario c. Zero values take the defaults.
type PacedConfig struct {
	// Dir holds the database file (required).
	Dir string
	// Patients is the number of simulated patients (default 10,000).
	Patients int
	// Rate is the arrival rate, messages/s (default 1,000).
	Rate float64
	// Duration is how long messages arrive (default 10 s).
	Duration time.Duration
	// Seed makes the message mix repeatable (default 3).
	Seed uint64
	// Backend is the store (nil: bbolt in Dir).
	Backend *Backend
}

// Paced is scenario c: messages arrive on a fixed schedule at Rate
// (open loop: an arrival never waits for an earlier one to finish), each
// handled in its own goroutine as the adapters do, and the latency of each
// is measured from its scheduled arrival until its step is committed. A
// stall therefore counts against every message that arrives during it
// (no coordinated omission).
func Paced(ctx context.Context, c PacedConfig) (Result, error) {
	if c.Patients <= 0 {
		c.Patients = 10000
	}
	if c.Rate <= 0 {
		c.Rate = TargetPacedRate
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.Seed == 0 {
		c.Seed = 3
	}
	r := Result{Scenario: "c", Name: fmt.Sprintf("paced load, %g msg/s open loop", c.Rate)}
	if c.Dir == "" {
		return r, errors.New("loadtest: Dir is required")
	}
	path := filepath.Join(c.Dir, "c.db")
	if err := removeDB(path); err != nil {
		return r, err
	}
	p, err := Start(ctx, Options{Path: path, Open: c.Backend.open()})
	if err != nil {
		return r, err
	}
	defer p.Close()
	if err := Enroll(ctx, p.Service, c.Patients, 256, time.Now().Add(-2*time.Hour)); err != nil {
		return r, err
	}
	disk, err := ProbeDisk(c.Dir, 3*time.Second, 2*time.Millisecond)
	if err != nil {
		return r, err
	}

	n := int(c.Rate * c.Duration.Seconds())
	lat := make([]time.Duration, n)
	errs := make([]error, n)
	sentBy := make([]int, c.Patients)
	sim := NewSim(c.Seed)
	interval := float64(time.Second) / c.Rate
	mw := watchMemory()
	var wg sync.WaitGroup
	t0 := time.Now().Add(20 * time.Millisecond)
	var lastLaunch time.Time
	for k := 0; k < n; {
		if err := ctx.Err(); err != nil {
			wg.Wait()
			return r, err
		}
		now := time.Now()
		// Launch every arrival whose time has come; sleep until the next.
		for ; k < n; k++ {
			at := t0.Add(time.Duration(float64(k) * interval))
			if at.After(now) {
				time.Sleep(at.Sub(now))
				break
			}
			i := k % c.Patients
			in := sim.Next(i)
			sentBy[i]++
			wg.Add(1)
			go func(k int) {
				defer wg.Done()
				errs[k] = p.Service.Receive(ctx, in)
				lat[k] = time.Since(at)
			}(k)
			lastLaunch = now
		}
	}
	wg.Wait()
	end := time.Now()
	r.Memory = mw.finish()
	if err := errors.Join(errs...); err != nil {
		return r, err
	}
	r.Count, r.Seconds = n, end.Sub(t0).Seconds()
	r.PerSecond = float64(n) / r.Seconds
	r.Latency = latencyOf(lat)
	r.figure("offered rate", c.Rate, "msg/s")
	r.figure("arrival rate achieved by the generator", float64(n-1)/lastLaunch.Sub(t0).Seconds(), "msg/s")
	r.figure("patients", float64(c.Patients), "")
	r.figure("disk alone, commit-sized write+sync x2, p50", disk.P50, "ms")
	r.figure("disk alone, p99", disk.P99, "ms")
	r.figure("disk alone, max", disk.Max, "ms")
	delivered, err := p.Stop()
	if err != nil {
		return r, err
	}
	r.figure("delivered by dispatcher during run", float64(delivered), "messages")
	if err := verify(&r, p, sentBy); err != nil {
		return r, err
	}
	r.check("p99 received to reply queued", fmt.Sprintf("< %s at %g msg/s", TargetP99, c.Rate), fmt.Sprintf("%.2f ms", r.Latency.P99), r.Latency.P99 < ms(TargetP99))
	return r, nil
}
