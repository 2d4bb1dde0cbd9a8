package postgres

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aftercare-clinic/aftercare/engine"
)

// InactiveBefore returns up to limit patients whose last activity (see
// storage.LastActivity) is before t, least recently active first, from the
// index on greatest(last_active_ns, visit_ns): the retention purge reads
// only the patients that expire. A patient whose state was set aside as
// unreadable keeps its row and is still listed.
func (s *Store) InactiveBefore(t time.Time, limit int) ([]engine.PatientID, error) {
	rows, err := s.pool.Query(context.Background(), `SELECT id FROM patients
		WHERE greatest(last_active_ns, visit_ns) < $1
		ORDER BY greatest(last_active_ns, visit_ns), id LIMIT $2`, ns(t), limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (engine.PatientID, error) {
		var id string
		err := r.Scan(&id)
		return engine.PatientID(id), err
	})
}

// VisitedSince calls fn with the state of every patient whose current
// visit is at or after t, oldest visit first, from the index on visit_ns.
// fn must not call back into the store. A state that cannot be decoded is
// passed over.
func (s *Store) VisitedSince(t time.Time, fn func(engine.State) error) error {
	rows, err := s.pool.Query(context.Background(), `SELECT state FROM patients
		WHERE visit_ns >= $1 AND state IS NOT NULL ORDER BY visit_ns, id`, ns(t))
	if err != nil {
		return err
	}
	var raw []byte
	_, err = pgx.ForEachRow(rows, []any{&raw}, func() error {
		var st engine.State
		if json.Unmarshal(raw, &st) != nil {
			return nil
		}
		return fn(st)
	})
	return err
}
