package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store/storage"
)

// commitEscalation stores the step's escalation, if any, under a new ID
// (read from tx at once; the rows go to w), then lets on
// (Step.OnEscalation) complete msgs and schedules the escalation timers it
// returns: what goes with an escalation (its alerts' buttons, its ladder)
// is the caller's, the store only keeps it. It reports whether on was
// called.
func commitEscalation(ctx context.Context, tx dbtx, w *rows, e *engine.Escalation, msgs []engine.Outbound, on func(engine.Escalation, []engine.Outbound) []engine.Timer) (bool, error) {
	if e == nil {
		return false, nil
	}
	var escID uint64
	if err := tx.QueryRow(ctx, `SELECT nextval('escalations_seq')`).Scan(&escID); err != nil {
		return false, err
	}
	e.ID = escID
	b, err := json.Marshal(e)
	if err != nil {
		return false, err
	}
	w.escalation(int64(escID), string(e.Patient), b)
	if on == nil {
		return false, nil
	}
	for _, t := range on(*e, msgs) {
		setTimer(w, storage.EscalationOwner(escID), t)
	}
	return true, nil
}

// ApplyEscalation loads escalation id under its row lock, calls fn with
// it, and commits the update in one transaction. With due set, it is
// skipped (false) when that ladder timer is gone, so a ladder step is
// never applied twice.
func (s *Store) ApplyEscalation(ctx context.Context, id uint64, due *storage.Due, now time.Time, fn func(e *engine.Escalation) (storage.EscalationUpdate, error)) (bool, error) {
	o := storage.EscalationOwner(id)
	kind, owner := ownerCols(o)
	quarantined := false
	ok, err := s.tx(ctx, func(tx pgx.Tx) error {
		var raw []byte
		err := tx.QueryRow(ctx, `SELECT body FROM escalations WHERE id = $1 FOR UPDATE`, int64(id)).Scan(&raw)
		found := err == nil
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if due != nil {
			tag, err := tx.Exec(ctx, `DELETE FROM timers WHERE owner_kind = $1 AND owner = $2 AND key = $3 AND due_ns = $4`, kind, owner, due.Key, ns(due.At))
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				return errSkip
			}
		}
		if !found {
			if due != nil {
				return nil // the ladder of an erased escalation just ends
			}
			return storage.ErrNotFound
		}
		var e engine.Escalation
		if err := json.Unmarshal(raw, &e); err != nil {
			// Set it aside and end its ladder, so it cannot hold up others.
			if _, err := tx.Exec(ctx, `DELETE FROM escalations WHERE id = $1`, int64(id)); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `DELETE FROM timers WHERE owner_kind = $1 AND owner = $2`, kind, owner); err != nil {
				return err
			}
			q := storage.Quarantined{Patient: engine.PatientID("escalation:" + owner), Kind: storage.QuarantineEscalation, Key: []byte(fmt.Sprint(id)), Value: raw, At: now, Reason: err.Error()}
			if err := s.quarantine(ctx, tx, q); err != nil {
				return err
			}
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
			if _, err := tx.Exec(ctx, `UPDATE escalations SET body = $2 WHERE id = $1`, int64(id), b); err != nil {
				return err
			}
		}
		if up.StopLadder {
			if _, err := tx.Exec(ctx, `DELETE FROM timers WHERE owner_kind = $1 AND owner = $2`, kind, owner); err != nil {
				return err
			}
		}
		var w rows
		for _, t := range up.Timers {
			setTimer(&w, o, t)
		}
		if err := putOutbound(&w, up.Messages, nil); err != nil {
			return err
		}
		if err := putAudit(&w, up.Audit); err != nil {
			return err
		}
		return w.flush(ctx, tx)
	})
	if err != nil {
		return false, fmt.Errorf("escalation %d: %w", id, err)
	}
	if quarantined && due == nil {
		return false, fmt.Errorf("escalation %d: %w (its record could not be read and was quarantined)", id, storage.ErrNotFound)
	}
	return ok, nil
}

// Escalation returns one escalation record.
func (s *Store) Escalation(id uint64) (engine.Escalation, error) {
	var e engine.Escalation
	var raw []byte
	err := s.pool.QueryRow(context.Background(), `SELECT body FROM escalations WHERE id = $1`, int64(id)).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return e, storage.ErrNotFound
	}
	if err != nil {
		return e, err
	}
	return e, json.Unmarshal(raw, &e)
}

// Escalations returns the escalation records, oldest first.
func (s *Store) Escalations() ([]engine.Escalation, error) {
	return decodeAll[engine.Escalation](s, `SELECT body FROM escalations ORDER BY id`)
}
