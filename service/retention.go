package service

import (
	"context"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store"
)

// RetentionStore is what the daily housekeeping needs: a walk over the
// patients, the erasing step, and forgetting old dedupe keys.
type RetentionStore interface {
	// Patients calls fn with every stored patient state.
	Patients(fn func(engine.State) error) error
	// Apply commits one step (here: an erasure).
	Apply(ctx context.Context, st store.Step, fn func(store.Input) (engine.Result, error)) (bool, error)
	// PruneDedupe forgets dedupe keys applied before the time.
	PruneDedupe(before time.Time) (int, error)
}

// DedupeHorizon is how long platform update keys are remembered.
// Platforms redeliver for at most a day (Telegram keeps unconfirmed
// updates 24 h; Discord resumes within minutes), and Telegram may restart
// its update IDs after a week of silence, so keys are forgotten well
// before that can collide.
const DedupeHorizon = 3 * 24 * time.Hour

// Purge erases the data of patients whose last visit and last message are
// older than the retention period, and returns how many were erased.
func (s *Service) Purge(ctx context.Context) (int, error) {
	now := s.clock.Now()
	cut := now.Add(-s.cfg.Retention)
	var old []engine.PatientID
	err := s.store.Patients(func(st engine.State) error {
		last := st.LastActive
		if st.Visit != nil && st.Visit.At.After(last) {
			last = st.Visit.At
		}
		if !last.IsZero() && last.Before(cut) {
			old = append(old, st.Patient)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range old {
		p := s.locks.acquire(id)
		ok, err := s.store.Apply(ctx, store.Step{Patient: id, Now: now}, func(in store.Input) (engine.Result, error) {
			return engine.Result{Erase: true, Audit: []engine.Audit{{At: now, Actor: "system", Action: "retention_purge"}}}, nil
		})
		s.locks.release(id, p)
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	return n, nil
}

// dailyRetention is the scheduler's daily housekeeping: the retention
// purge, then forgetting dedupe keys older than DedupeHorizon. Failures are
// logged and retried the next day; they never stop the scheduler.
func (s *Service) dailyRetention(ctx context.Context, now time.Time) {
	if n, err := s.Purge(ctx); err != nil {
		s.log.Error("retention purge failed", "err", err)
	} else if n > 0 {
		s.log.Info("retention purge", "patients_erased", n)
	}
	if n, err := s.store.PruneDedupe(now.Add(-DedupeHorizon)); err != nil {
		s.log.Error("pruning dedupe keys failed", "err", err)
	} else if n > 0 {
		s.log.Debug("dedupe keys pruned", "count", n)
	}
}
