package postgres

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store/storage"
)

// commitTimers removes the timer the step fired, if any, and applies the
// step's changes to the patient's timers.
func commitTimers(w *rows, st storage.Step, ts []engine.Timer) {
	if d := st.Due; d != nil {
		w.timer(timerID{"patient", string(st.Patient), d.Key}, ns(d.At), true)
	}
	for _, t := range ts {
		setTimer(w, storage.PatientOwner(st.Patient), t)
	}
}

// setTimer schedules (or, with a zero At, cancels) one of o's timers,
// replacing the key's earlier time and any claim on it.
func setTimer(w *rows, o storage.Owner, t engine.Timer) {
	kind, owner := ownerCols(o)
	if t.At.IsZero() {
		w.timer(timerID{kind, owner, t.Key}, -1, true)
		return
	}
	w.timer(timerID{kind, owner, t.Key}, ns(t.At), false)
}

// ownerCols returns the timers table's owner_kind and owner columns of o
// (migration 0003): the kind's name, and the patient ID or the escalation
// ID in decimal.
func ownerCols(o storage.Owner) (kind, owner string) {
	if o.Kind == storage.OwnerEscalation {
		return "escalation", strconv.FormatUint(o.Escalation, 10)
	}
	return "patient", string(o.Patient)
}

// ownerFromCols is ownerCols' inverse.
func ownerFromCols(kind, owner string) (storage.Owner, error) {
	switch kind {
	case "patient":
		return storage.PatientOwner(engine.PatientID(owner)), nil
	case "escalation":
		id, err := strconv.ParseUint(owner, 10, 64)
		if err != nil {
			return storage.Owner{}, fmt.Errorf("%w: timer of escalation %q", storage.ErrCorrupt, owner)
		}
		return storage.EscalationOwner(id), nil
	}
	return storage.Owner{}, fmt.Errorf("%w: timer owner kind %q", storage.ErrCorrupt, kind)
}

// DueBefore claims and returns up to limit timers due at or before now,
// earliest first: timers claimed by another live instance are left to it,
// and those this instance claimed before are returned again (their lease
// renewed), so a failed step is retried on the next pass.
func (s *Store) DueBefore(now time.Time, limit int) ([]storage.Due, error) {
	rows, err := s.pool.Query(context.Background(), `WITH c AS (
			SELECT owner_kind, owner, key FROM timers
			WHERE due_ns <= $1 AND (claimed_by IS NULL OR claimed_by = $2 OR lease_until < now())
			ORDER BY due_ns, owner_kind, owner, key LIMIT $3 FOR UPDATE SKIP LOCKED)
		UPDATE timers t SET claimed_by = $2, lease_until = now() + $4 * interval '1 millisecond'
		FROM c WHERE t.owner_kind = c.owner_kind AND t.owner = c.owner AND t.key = c.key
		RETURNING t.owner_kind, t.owner, t.key, t.due_ns`, ns(now), s.instance, limit, s.leaseMS)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, scanDue)
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if !a.At.Equal(b.At) {
			return a.At.Before(b.At)
		}
		ak, ao := ownerCols(a.Owner)
		bk, bo := ownerCols(b.Owner)
		if ak != bk {
			return ak < bk
		}
		if ao != bo {
			return ao < bo
		}
		return a.Key < b.Key
	})
	return out, nil
}

// scanDue reads a timers row of owner_kind, owner, key, due_ns.
func scanDue(r pgx.CollectableRow) (storage.Due, error) {
	var d storage.Due
	var kind, owner string
	var n int64
	if err := r.Scan(&kind, &owner, &d.Key, &n); err != nil {
		return d, err
	}
	var err error
	d.Owner, err = ownerFromCols(kind, owner)
	d.At = fromNS(n)
	return d, err
}

// NextDue returns the earliest timer not claimed by another live instance.
func (s *Store) NextDue() (storage.Due, bool, error) {
	rows, err := s.pool.Query(context.Background(), `SELECT owner_kind, owner, key, due_ns FROM timers
		WHERE claimed_by IS NULL OR claimed_by = $1 OR lease_until < now()
		ORDER BY due_ns, owner_kind, owner, key LIMIT 1`, s.instance)
	if err != nil {
		return storage.Due{}, false, err
	}
	ds, err := pgx.CollectRows(rows, scanDue)
	if err != nil || len(ds) == 0 {
		return storage.Due{}, false, err
	}
	return ds[0], true, nil
}

// Timers returns the pending timers of a patient.
func (s *Store) Timers(id engine.PatientID) (map[string]time.Time, error) {
	return s.ownerTimers(storage.PatientOwner(id))
}

// EscalationTimers returns the pending timers of an escalation (its
// ladder).
func (s *Store) EscalationTimers(id uint64) (map[string]time.Time, error) {
	return s.ownerTimers(storage.EscalationOwner(id))
}

func (s *Store) ownerTimers(o storage.Owner) (map[string]time.Time, error) {
	kind, owner := ownerCols(o)
	rows, err := s.pool.Query(context.Background(), `SELECT owner_kind, owner, key, due_ns FROM timers WHERE owner_kind = $1 AND owner = $2`, kind, owner)
	if err != nil {
		return nil, err
	}
	ds, err := pgx.CollectRows(rows, scanDue)
	out := map[string]time.Time{}
	for _, d := range ds {
		out[d.Key] = d.At
	}
	return out, err
}
