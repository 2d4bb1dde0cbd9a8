package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store/storage"
)

// escalationLabel names an escalation in a quarantine record, whose
// Patient field says whose the record was.
func escalationLabel(id uint64) engine.PatientID {
	return engine.PatientID("escalation:" + strconv.FormatUint(id, 10))
}

// EscalationUpdate is storage.EscalationUpdate, what an escalation step commits.
type EscalationUpdate = storage.EscalationUpdate

// ApplyEscalation loads escalation id, calls fn with it, and commits the
// update in one transaction. With due set (one of the escalation's own
// timers), it is skipped (false) when that timer is gone, so a ladder step
// is never applied twice.
func (s *Store) ApplyEscalation(ctx context.Context, id uint64, due *Due, now time.Time, fn func(e *engine.Escalation) (EscalationUpdate, error)) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	applied, quarantined := false, false
	o := EscalationOwner(id)
	err := s.db.Update(func(tx *bolt.Tx) error {
		applied, quarantined = false, false
		if due != nil {
			took, err := takeTimer(tx, Due{Owner: o, Key: due.Key, At: due.At})
			if err != nil || !took {
				return err
			}
		}
		eb := tx.Bucket(bEscalations)
		raw := eb.Get(u64(id))
		if raw == nil {
			if due != nil {
				applied = true // the ladder of an erased escalation just ends
				return nil
			}
			return ErrNotFound
		}
		var e engine.Escalation
		if err := json.Unmarshal(raw, &e); err != nil {
			// Set it aside and end its ladder: a ladder step that fails
			// every time would hold up every timer due after it.
			q := Quarantined{Patient: escalationLabel(id), Kind: QuarantineEscalation, Key: u64(id), Value: raw, At: now, Reason: err.Error()}
			if err := s.quarantine(tx, bEscalations, q); err != nil {
				return err
			}
			if err := deleteTimers(tx, o); err != nil {
				return err
			}
			applied = due != nil
			quarantined = true
			return nil
		}
		up, err := fn(&e)
		if err != nil {
			return err
		}
		if up.Changed {
			b, err := json.Marshal(e)
			if err != nil {
				return err
			}
			if err := eb.Put(u64(id), b); err != nil {
				return err
			}
		}
		if up.StopLadder {
			if err := deleteTimers(tx, o); err != nil {
				return err
			}
		}
		for _, t := range up.Timers {
			if err := setTimer(tx, o, t); err != nil {
				return err
			}
		}
		if err := putOutbound(tx, up.Messages, nil); err != nil {
			return err
		}
		if err := putAudit(tx, up.Audit); err != nil {
			return err
		}
		applied = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("escalation %d: %w", id, err)
	}
	if quarantined && due == nil {
		return false, fmt.Errorf("escalation %d: %w (its record could not be read and was quarantined)", id, ErrNotFound)
	}
	return applied, nil
}

// Escalation returns one escalation record.
func (s *Store) Escalation(id uint64) (engine.Escalation, error) {
	var e engine.Escalation
	err := s.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bEscalations).Get(u64(id))
		if raw == nil {
			return ErrNotFound
		}
		return json.Unmarshal(raw, &e)
	})
	return e, err
}

// Escalations returns the escalation records, oldest first.
func (s *Store) Escalations() ([]engine.Escalation, error) {
	return decodeAll[engine.Escalation](s, bEscalations)
}
