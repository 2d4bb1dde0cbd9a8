package service

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store/storage"
)

// RetentionStore is what the daily housekeeping needs: a walk over the
// patients, the erasing step, and forgetting old dedupe keys.
type RetentionStore interface {
	// Patients calls fn with every stored patient state.
	Patients(fn func(engine.State) error) error
	// Apply commits one step (here: an erasure).
	Apply(ctx context.Context, st storage.Step, fn func(storage.Input) (engine.Result, error)) (bool, error)
	// PruneDedupe forgets dedupe keys applied before the time.
	PruneDedupe(before time.Time) (int, error)
}

// DedupeHorizon is how long platform update keys are remembered.
// Platforms redeliver for at most a day (Telegram keeps unconfirmed
// updates 24 h; Discord resumes within minutes), and Telegram may restart
// its update IDs after a week of silence, so keys are forgotten well
// before that can collide.
const DedupeHorizon = 3 * 24 * time.Hour

// inactivity is what the retention purge reads when the store keeps a
// last-activity index (both backends do): the patients that expire, least
// recently active first, so a pass costs what expires, not a read of every
// patient.
type inactivity interface {
	InactiveBefore(t time.Time, limit int) ([]engine.PatientID, error)
}

// purgeBatch is how many expired patients one index read returns.
const purgeBatch = 1000

// Purge erases the data of patients whose last visit and last message are
// older than the retention period, and returns how many were erased. Each
// erasure checks the patient's state again in its own transaction, so a
// patient who wrote since the index was read is kept.
func (s *Service) Purge(ctx context.Context) (int, error) {
	now := s.clock.Now()
	cut := now.Add(-s.cfg.Retention)
	ix, ok := s.store.(inactivity)
	if !ok {
		old, err := s.inactiveByScan(cut)
		if err != nil {
			return 0, err
		}
		return s.erase(ctx, now, cut, old)
	}
	n := 0
	tried := map[engine.PatientID]bool{}
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		old, err := ix.InactiveBefore(cut, purgeBatch)
		if err != nil {
			return n, err
		}
		fresh := old[:0:0]
		for _, id := range old {
			if !tried[id] {
				tried[id] = true
				fresh = append(fresh, id)
			}
		}
		k, err := s.erase(ctx, now, cut, fresh)
		n += k
		// Fewer than a batch: the index holds no more before the cut. A
		// batch that brought back a patient already tried (kept because
		// active again, or an entry the erasure did not remove) ends the
		// pass too: the next pass tries again, and none loops.
		if err != nil || len(old) < purgeBatch || len(fresh) < len(old) {
			return n, err
		}
	}
}

// inactiveByScan reads every patient state for those inactive before cut,
// for a store without the index.
func (s *Service) inactiveByScan(cut time.Time) ([]engine.PatientID, error) {
	var old []engine.PatientID
	err := s.store.Patients(func(st engine.State) error {
		if last := storage.LastActivity(st); !last.IsZero() && last.Before(cut) {
			old = append(old, st.Patient)
		}
		return nil
	})
	return old, err
}

// purgeWorkers is how many erasures run at once: the store puts
// concurrent steps into one commit, so a large expiry shares commits
// instead of paying one each.
const purgeWorkers = 32

// erase erases each patient of ids still inactive before cut, one step
// each (purgeWorkers at once, each patient under its lock), and returns
// how many it erased.
func (s *Service) erase(ctx context.Context, now, cut time.Time, ids []engine.PatientID) (int, error) {
	var n, next atomic.Int64
	workers := min(purgeWorkers, len(ids))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(ids) || ctx.Err() != nil {
					return
				}
				ok, err := s.eraseExpired(ctx, now, cut, ids[i])
				if err != nil {
					errs[w] = err
					return
				}
				if ok {
					n.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return int(n.Load()), err
	}
	return int(n.Load()), ctx.Err()
}

// eraseExpired erases one patient in one step if they are still inactive
// before cut, and reports whether it did.
func (s *Service) eraseExpired(ctx context.Context, now, cut time.Time, id engine.PatientID) (bool, error) {
	p := s.locks.acquire(id)
	defer s.locks.release(id, p)
	return s.store.Apply(ctx, storage.Step{Patient: id, Now: now}, func(in storage.Input) (engine.Result, error) {
		// Found false: the state was set aside as unreadable; the rest
		// of the patient's data expires all the same.
		if last := storage.LastActivity(in.State); in.Found && (last.IsZero() || !last.Before(cut)) {
			return engine.Result{}, storage.ErrSkip
		}
		return engine.Result{Erase: true, Audit: []engine.Audit{{At: now, Actor: "system", Action: "retention_purge"}}}, nil
	})
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
