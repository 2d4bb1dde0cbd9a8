package service

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store/storage"
)

// TimerStore is the schedule the scheduler reads. Timers are set and
// removed by the steps that own them (StepStore.Apply,
// EscalationStore.ApplyEscalation).
type TimerStore interface {
	// DueBefore returns up to limit timers due at or before now, earliest
	// first.
	DueBefore(now time.Time, limit int) ([]storage.Due, error)
	// NextDue returns the earliest timer; false when there is none.
	NextDue() (storage.Due, bool, error)
}

// Fire applies one due timer: a patient's goes to the engine as an
// EventDue, an escalation's is a rung of its ladder (ladder.go). It
// reports false when the timer had already been applied (by another pass,
// or before a restart).
func (s *Service) Fire(ctx context.Context, d storage.Due) (bool, error) {
	switch d.Kind {
	case storage.OwnerEscalation:
		return s.fireLadder(ctx, d)
	case storage.OwnerPatient:
	default:
		return false, fmt.Errorf("service: timer %s of unknown owner kind %s", d.Key, d.Kind)
	}
	return s.apply(ctx, d.Patient, "", &d, engine.Event{Kind: engine.EventDue, Timer: d.Key})
}

// dueWorkers is how many patients' due timers DeliverDue fires at once.
// Steps of different patients share group commits, so firing them
// concurrently turns one commit per check-in into one per group: catching
// up after downtime goes from a few hundred check-ins a second to thousands.
const dueWorkers = 32

// DeliverDue fires every timer due at the clock's current time and returns
// how many it applied. Timers are taken earliest first, 256 at a time;
// different patients' timers fire concurrently, one patient's always in due
// order (an older check-in is settled before a newer one).
func (s *Service) DeliverDue(ctx context.Context) (int, error) {
	n := 0
	for {
		due, err := s.store.DueBefore(s.clock.Now(), 256)
		if err != nil {
			return n, err
		}
		if len(due) == 0 {
			return n, nil
		}
		fired, err := s.fireAll(ctx, due)
		n += fired
		if err != nil {
			return n, err
		}
		if fired == 0 {
			return n, nil
		}
	}
}

// fireAll fires due (in due order) with up to dueWorkers owners (patients,
// escalations) at once, each owner's timers in order on one worker. It
// stops taking new owners at the first error and returns it.
func (s *Service) fireAll(ctx context.Context, due []storage.Due) (int, error) {
	var order []storage.Owner
	byOwner := map[storage.Owner][]storage.Due{}
	for _, d := range due {
		if _, ok := byOwner[d.Owner]; !ok {
			order = append(order, d.Owner)
		}
		byOwner[d.Owner] = append(byOwner[d.Owner], d)
	}
	var (
		mu       sync.Mutex
		fired    int
		firstErr error
		wg       sync.WaitGroup
	)
	next := make(chan storage.Owner)
	for range min(dueWorkers, len(order)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range next {
				for _, d := range byOwner[p] {
					ok, err := s.Fire(ctx, d)
					mu.Lock()
					if ok {
						fired++
					}
					if err != nil && firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					if err != nil {
						break
					}
				}
			}
		}()
	}
	for _, p := range order {
		mu.Lock()
		stop := firstErr != nil
		mu.Unlock()
		if stop {
			break
		}
		next <- p
	}
	close(next)
	wg.Wait()
	return fired, firstErr
}

// Wake makes the scheduler look at the schedule again (after new timers).
func (s *Service) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// RunScheduler fires timers as they fall due until ctx is cancelled. It
// first catches up on everything that fell due while the service was down.
func (s *Service) RunScheduler(ctx context.Context) error {
	backoff := time.Second
	// Catch up on due check-ins first; the daily purge (a walk over all
	// patients) first runs an hour after start.
	lastPurge := s.clock.Now().Add(-23 * time.Hour)
	for {
		if now := s.clock.Now(); now.Sub(lastPurge) >= 24*time.Hour && (s.cfg.Housekeeping == nil || s.cfg.Housekeeping()) {
			lastPurge = now
			s.dailyRetention(ctx, now)
		}
		if _, err := s.DeliverDue(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.log.Error("scheduler pass failed; retrying", "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return nil
			case <-s.clock.After(backoff):
			}
			backoff = min(backoff*2, time.Minute)
			continue
		}
		backoff = time.Second
		wait := time.Minute
		if d, ok, err := s.store.NextDue(); err == nil && ok {
			wait = max(d.At.Sub(s.clock.Now()), 0)
			wait = min(wait, time.Minute)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-s.clock.After(wait):
		}
	}
}
