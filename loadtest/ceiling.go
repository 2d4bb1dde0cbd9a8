package loadtest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store"
)

// The ceilings a throughput scenario is read against, measured in the same
// run: what the machine can do at all, so a figure says how much of it the
// code reaches rather than how fast the disk or the CPUs were that day.

// TargetCeilingShare is the share of the bbolt batch ceiling scenario a
// must reach: the rest of the pipeline may cost at most a tenth of what
// committing its records costs bbolt alone.
const TargetCeilingShare = 0.90

// RecordShape is one bucket's share of a step: how many records a step
// adds (or, for states, overwrites) and how large they are.
type RecordShape struct {
	Bucket string `json:"bucket"`
	// PerStep is the mean number of records a step writes.
	PerStep float64 `json:"per_step"`
	// KeyBytes and ValueBytes are the records' mean sizes.
	KeyBytes   int `json:"key_bytes"`
	ValueBytes int `json:"value_bytes"`
	// ByPatient is set for buckets keyed by patient first (states,
	// transcript, timer index, visits): their writes land on random pages,
	// where the others append at the end of the key space.
	ByPatient bool `json:"by_patient"`
}

// byPatient lists the buckets whose keys start with the patient ID.
var byPatient = map[string]bool{"states": true, "timer_idx": true, "visits": true, "read_marks": true, "quarantine": true, "by_patient": true}

// StepShape derives the records of one step from the store's bucket sizes
// before and after steps steps: the states bucket is overwritten once a
// step; every other bucket adds what it grew by.
func StepShape(before, after []store.BucketSize, steps int) []RecordShape {
	if steps <= 0 {
		return nil
	}
	was := map[string]store.BucketSize{}
	for _, b := range before {
		was[b.Bucket] = b
	}
	var out []RecordShape
	for _, a := range after {
		b := was[a.Bucket]
		if a.Bucket == "states" && a.Records > 0 {
			out = append(out, RecordShape{Bucket: a.Bucket, PerStep: 1, KeyBytes: a.KeyBytes / a.Records, ValueBytes: a.ValueBytes / a.Records, ByPatient: true})
			continue
		}
		n := a.Records - b.Records
		if n <= 0 {
			continue
		}
		out = append(out, RecordShape{
			Bucket: a.Bucket, PerStep: float64(n) / float64(steps),
			KeyBytes: (a.KeyBytes - b.KeyBytes) / n, ValueBytes: (a.ValueBytes - b.ValueBytes) / n,
			ByPatient: byPatient[a.Bucket],
		})
	}
	return out
}

// CeilingConfig sizes BoltCeiling.
type CeilingConfig struct {
	// Dir holds the database file (required).
	Dir string
	// Patients is the number of patients whose states exist and are
	// overwritten at random, as in the scenario.
	Patients int
	// Steps is the number of steps committed; Batch how many share one
	// commit (the scenario's writes per commit).
	Steps, Batch int
	// Shape is the records of one step (StepShape).
	Shape []RecordShape
}

// Ceiling is a ceiling's figures.
type Ceiling struct {
	// PerSecond is the steps (messages) per second it reached.
	PerSecond float64 `json:"per_second"`
	// CPU is the process's CPU time per step.
	CPU time.Duration `json:"cpu_ns"`
	// Written is the bytes written to files per step (0 where not counted).
	Written float64 `json:"written_bytes"`
}

// BoltCeiling measures what bbolt alone can commit: Steps steps in commits
// of Batch, each step writing records of the sizes in Shape, with the
// store's bbolt options (fsync on) and one goroutine committing, as the
// store's committer does. Nothing else runs: no engine, no encoding, no
// service. A store reaching this rate spends nothing of its own on the
// commit path.
func BoltCeiling(ctx context.Context, c CeilingConfig) (Ceiling, error) {
	var out Ceiling
	if c.Dir == "" || c.Patients <= 0 || c.Steps <= 0 {
		return out, errors.New("loadtest: ceiling needs Dir, Patients and Steps")
	}
	c.Batch = max(c.Batch, 1)
	path := filepath.Join(c.Dir, "ceiling.db")
	if err := removeDB(path); err != nil {
		return out, err
	}
	defer removeDB(path)
	db, err := bolt.Open(path, 0o600, store.BoltOptions(store.Options{}))
	if err != nil {
		return out, fmt.Errorf("ceiling: %w", err)
	}
	defer db.Close()
	var states RecordShape
	for _, s := range c.Shape {
		if s.Bucket == "states" {
			states = s
		}
	}
	val := make([]byte, 64<<10)
	for i := range val {
		val[i] = byte(i*7 + 3)
	}
	value := func(n int) []byte { return val[:min(n, len(val))] }
	// The states exist before the run, as the enrolled patients' do.
	err = db.Update(func(tx *bolt.Tx) error {
		for _, s := range c.Shape {
			if _, err := tx.CreateBucketIfNotExists([]byte(s.Bucket)); err != nil {
				return err
			}
		}
		if states.Bucket == "" {
			return nil
		}
		b := tx.Bucket([]byte(states.Bucket))
		for i := range c.Patients {
			if err := b.Put([]byte(Patient(i)), value(states.ValueBytes)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return out, fmt.Errorf("ceiling: %w", err)
	}
	rng := rand.New(rand.NewPCG(7, 11))
	owed := make([]float64, len(c.Shape)) // fractional records carried to the next step
	var seq uint64
	key := func(p engine.PatientID, s RecordShape) []byte {
		seq++
		k := make([]byte, 0, max(s.KeyBytes, len(p)+9))
		if s.ByPatient {
			k = append(append(k, p...), 0)
		}
		k = binary.BigEndian.AppendUint64(k, seq)
		for len(k) < s.KeyBytes {
			k = append(k, 'k')
		}
		return k
	}
	cost := startCost()
	start := time.Now()
	for done := 0; done < c.Steps; {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		n := min(c.Batch, c.Steps-done)
		err := db.Update(func(tx *bolt.Tx) error {
			for range n {
				p := Patient(rng.IntN(c.Patients))
				for j, s := range c.Shape {
					b := tx.Bucket([]byte(s.Bucket))
					if !s.ByPatient {
						b.FillPercent = store.AppendFillPercent // as the store fills them
					}
					if s.Bucket == states.Bucket {
						if err := b.Put([]byte(p), value(s.ValueBytes)); err != nil {
							return err
						}
						continue
					}
					owed[j] += s.PerStep
					for ; owed[j] >= 1; owed[j]-- {
						if err := b.Put(key(p, s), value(s.ValueBytes)); err != nil {
							return err
						}
					}
				}
			}
			return nil
		})
		if err != nil {
			return out, fmt.Errorf("ceiling: %w", err)
		}
		done += n
	}
	elapsed := time.Since(start)
	out.PerSecond = float64(c.Steps) / elapsed.Seconds()
	per := cost.per(c.Steps)
	out.CPU, out.Written = per.CPU, per.Written
	return out, nil
}

// PureWork measures the work a message needs whatever the store: the
// engine step with the real protocol and triage, then the new state and
// the outgoing messages encoded as the store encodes them, for the same
// message mix as the throughput scenarios, from one goroutine per CPU and
// without a store. Its rate is the ceiling no pipeline on this machine can
// pass; its CPU per message the least any can spend.
func PureWork(ctx context.Context, patients, messages int, seed uint64) (Ceiling, error) {
	var out Ceiling
	eng, err := NewEngine()
	if err != nil {
		return out, err
	}
	visit := time.Now().Add(-2 * time.Hour)
	states := make([]engine.State, patients)
	for i := range states {
		r := eng.Step(Patient(i), engine.State{}, engine.Event{Kind: engine.EventVisit, Visit: new(SimVisit(i, visit))}, visit)
		states[i] = r.State
	}
	workers := runtime.GOMAXPROCS(0)
	workers = max(1, min(workers, patients))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	cost := startCost()
	start := time.Now()
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sim := NewSim(seed<<16 + uint64(g))
			mine := (patients - g + workers - 1) / workers
			turn := 0
			for k := g; k < messages; k += workers {
				if k%1024 == g && ctx.Err() != nil {
					errs[g] = ctx.Err()
					return
				}
				i := g + (turn%mine)*workers
				turn++
				in := sim.Next(i)
				now := time.Now()
				r := eng.Step(in.Patient, states[i], engine.Event{Kind: engine.EventMessage, Text: in.Text, Choice: in.Choice, DisplayName: in.DisplayName}, now)
				if _, err := store.EncodeState(r.State); err != nil {
					errs[g] = err
					return
				}
				if _, err := store.EncodeMessages(r.Messages); err != nil {
					errs[g] = err
					return
				}
				states[i] = r.State
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return out, err
	}
	out.PerSecond = float64(messages) / elapsed.Seconds()
	out.CPU = cost.per(messages).CPU
	return out, nil
}
