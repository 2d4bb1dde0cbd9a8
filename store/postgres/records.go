package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store/storage"
)

func putAudit(w *rows, as []engine.Audit) error {
	for _, a := range as {
		b, err := json.Marshal(a)
		if err != nil {
			return err
		}
		w.auditLine(string(a.Patient), b)
	}
	return nil
}

// erase deletes everything stored about a patient inside tx: state,
// timers, read mark, visits, quarantined records, escalations and their
// ladders, audit lines, queued messages and used invites. Dedupe keys hold
// no personal data and stay.
func erase(ctx context.Context, tx dbtx, p engine.PatientID) error {
	for _, q := range []string{
		`DELETE FROM patients WHERE id = $1`,
		`DELETE FROM timers WHERE owner_kind = 'patient' AND owner = $1`,
		`DELETE FROM read_marks WHERE patient = $1`,
		`DELETE FROM visits WHERE patient = $1`,
		`DELETE FROM quarantine WHERE patient = $1`,
		`DELETE FROM transcript WHERE patient = $1`,
		`DELETE FROM timers WHERE owner_kind = 'escalation' AND owner IN (SELECT id::text FROM escalations WHERE patient = $1)`,
		`DELETE FROM escalations WHERE patient = $1`,
		`DELETE FROM audit WHERE patient = $1`,
		`DELETE FROM outbox WHERE to_id = $1 OR about = $1`,
		`DELETE FROM invites WHERE used_by = $1`,
	} {
		if _, err := tx.Exec(ctx, q, string(p)); err != nil {
			return err
		}
	}
	return nil
}

// quarantine records q (the caller has removed the unreadable record),
// audits it and queues the staff notice, inside tx.
func (s *Store) quarantine(ctx context.Context, tx dbtx, q storage.Quarantined) error {
	if err := tx.QueryRow(ctx, `INSERT INTO quarantine (patient, kind, key, value, at, reason) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
		string(q.Patient), q.Kind, q.Key, q.Value, q.At, q.Reason).Scan(&q.Seq); err != nil {
		return err
	}
	detail := fmt.Sprintf("%s record could not be read; kept as quarantine #%d", q.Kind, q.Seq)
	if q.Kind == storage.QuarantineState {
		detail += "; the patient continues from a fresh state"
	}
	var w rows
	if err := putAudit(&w, []engine.Audit{{At: q.At, Actor: "system", Action: "record_quarantined", Patient: q.Patient, Detail: detail}}); err != nil {
		return err
	}
	if f := s.notice.Load(); f != nil && *f != nil {
		if err := putOutbound(&w, (*f)(q), nil); err != nil {
			return err
		}
	}
	return w.flush(ctx, tx)
}

// Quarantine returns the records set aside, oldest first.
func (s *Store) Quarantine() ([]storage.Quarantined, error) {
	rows, err := s.pool.Query(context.Background(), `SELECT id, patient, kind, key, value, at, reason FROM quarantine ORDER BY id`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.Quarantined, error) {
		var q storage.Quarantined
		var p string
		err := r.Scan(&q.Seq, &p, &q.Kind, &q.Key, &q.Value, &q.At, &q.Reason)
		q.Patient = engine.PatientID(p)
		return q, err
	})
}

// StateRaw returns a patient's stored state and its raw bytes (nil when
// not stored), for Step.Prepared. It reads the last committed state
// without a lock: a row lock taken outside a transaction is a transaction
// of its own, with a commit that waits for the disk, and a step prepared
// from a state that changed meanwhile is recomputed by Apply anyway.
func (s *Store) StateRaw(id engine.PatientID) (engine.State, []byte, error) {
	var st engine.State
	var raw []byte
	err := s.pool.QueryRow(context.Background(), `SELECT state FROM patients WHERE id = $1`, string(id)).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && raw == nil) {
		return st, nil, nil
	}
	if err != nil {
		return st, nil, err
	}
	return st, raw, json.Unmarshal(raw, &st)
}

// State returns a patient's stored state.
func (s *Store) State(id engine.PatientID) (engine.State, bool, error) {
	st, raw, err := s.StateRaw(id)
	return st, raw != nil, err
}

// AppendAudit adds lines to the audit trail, for actions outside a patient
// step (reads of patient data).
func (s *Store) AppendAudit(ctx context.Context, as ...engine.Audit) error {
	if len(as) == 0 {
		return nil
	}
	_, err := s.tx(ctx, func(tx pgx.Tx) error {
		var w rows
		if err := putAudit(&w, as); err != nil {
			return err
		}
		return w.flush(ctx, tx)
	})
	return err
}

// PruneDedupe forgets dedupe keys applied before t.
func (s *Store) PruneDedupe(t time.Time) (int, error) {
	tag, err := s.pool.Exec(context.Background(), `DELETE FROM dedupe WHERE at_ns < $1`, ns(t))
	return int(tag.RowsAffected()), err
}

// Audit returns the audit trail, oldest first.
func (s *Store) Audit() ([]engine.Audit, error) {
	return decodeAll[engine.Audit](s, `SELECT body FROM audit ORDER BY id`)
}

func decodeAll[T any](s *Store, q string, args ...any) ([]T, error) {
	rows, err := s.pool.Query(context.Background(), q, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (T, error) {
		var x T
		var b []byte
		if err := r.Scan(&b); err != nil {
			return x, err
		}
		if err := json.Unmarshal(b, &x); err != nil {
			return x, fmt.Errorf("%w: %v", storage.ErrCorrupt, err)
		}
		return x, nil
	})
}

// Patients calls fn with every stored patient state, in ID order. fn must
// not call back into the store. A state that cannot be decoded is passed
// over and quarantined (the patient continues from a fresh state).
func (s *Store) Patients(fn func(engine.State) error) error {
	ctx := context.Background()
	rows, err := s.pool.Query(ctx, `SELECT id, state FROM patients WHERE state IS NOT NULL ORDER BY id`)
	if err != nil {
		return err
	}
	type bad struct {
		id     string
		raw    []byte
		reason string
	}
	var bads []bad
	var id string
	var raw []byte
	if _, err := pgx.ForEachRow(rows, []any{&id, &raw}, func() error {
		if strings.HasPrefix(id, "escalation:") {
			return nil
		}
		var st engine.State
		if err := json.Unmarshal(raw, &st); err != nil {
			bads = append(bads, bad{id, bytes.Clone(raw), err.Error()})
			return nil
		}
		return fn(st)
	}); err != nil {
		return err
	}
	for _, b := range bads {
		if _, err := s.tx(ctx, func(tx pgx.Tx) error {
			cur, err := lockPatient(ctx, tx, engine.PatientID(b.id))
			if err != nil {
				return err
			}
			var st engine.State
			if cur == nil || json.Unmarshal(cur, &st) == nil {
				return errSkip // rewritten or gone meanwhile
			}
			if _, err := tx.Exec(ctx, `UPDATE patients SET state = NULL WHERE id = $1`, b.id); err != nil {
				return err
			}
			return s.quarantine(ctx, tx, storage.Quarantined{Patient: engine.PatientID(b.id), Kind: storage.QuarantineState, Key: []byte(b.id), Value: cur, At: time.Now(), Reason: b.reason})
		}); err != nil {
			return err
		}
	}
	return nil
}

// PatientIDs returns the IDs of the stored patients on platform, in ID
// order, without decoding their states.
func (s *Store) PatientIDs(platform string) ([]engine.PatientID, error) {
	rows, err := s.pool.Query(context.Background(), `SELECT id FROM patients WHERE state IS NOT NULL AND id >= $1 AND id < $2 ORDER BY id`,
		platform+":", platform+";")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (engine.PatientID, error) {
		var id string
		err := r.Scan(&id)
		return engine.PatientID(id), err
	})
}

// ReadMarks returns the read marks of platform's patients, keyed by patient.
func (s *Store) ReadMarks(platform string) (map[engine.PatientID]string, error) {
	rows, err := s.pool.Query(context.Background(), `SELECT patient, mark FROM read_marks WHERE patient >= $1 AND patient < $2`,
		platform+":", platform+";")
	if err != nil {
		return nil, err
	}
	out := map[engine.PatientID]string{}
	var p, m string
	_, err = pgx.ForEachRow(rows, []any{&p, &m}, func() error {
		out[engine.PatientID(p)] = m
		return nil
	})
	return out, err
}

// SetReadMarks stores, in one transaction, how far each patient's platform
// conversation was read. Marks of patients without a stored state are not
// kept: an erased patient stays erased.
func (s *Store) SetReadMarks(marks map[engine.PatientID]string) error {
	if len(marks) == 0 {
		return nil
	}
	ctx := context.Background()
	_, err := s.tx(ctx, func(tx pgx.Tx) error {
		for p, m := range marks {
			if _, err := tx.Exec(ctx, `INSERT INTO read_marks (patient, mark)
				SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM patients WHERE id = $1 AND state IS NOT NULL)
				ON CONFLICT (patient) DO UPDATE SET mark = excluded.mark`, string(p), m); err != nil {
				return err
			}
		}
		return nil
	})
	return err
}

// PatientRecord collects everything stored about a patient, for export.
func (s *Store) PatientRecord(p engine.PatientID) (storage.Record, error) {
	var r storage.Record
	st, found, err := s.State(p)
	if err != nil {
		return r, err
	}
	if !found {
		return r, storage.ErrNotFound
	}
	r.State = st
	if r.Visits, err = decodeAll[engine.Visit](s, `SELECT body FROM visits WHERE patient = $1 ORDER BY id`, string(p)); err != nil {
		return r, err
	}
	if r.Escalations, err = decodeAll[engine.Escalation](s, `SELECT body FROM escalations WHERE patient = $1 ORDER BY id`, string(p)); err != nil {
		return r, err
	}
	// The conversation, both sides: exported with the record and shown on
	// the desk's patient page, as the bbolt store does.
	if r.Transcript, err = decodeAll[storage.TranscriptLine](s, `SELECT body FROM transcript WHERE patient = $1 ORDER BY id`, string(p)); err != nil {
		return r, err
	}
	r.Audit, err = decodeAll[engine.Audit](s, `SELECT body FROM audit WHERE patient = $1 ORDER BY id`, string(p))
	return r, err
}

// Applied reports whether a platform update's key was committed already.
func (s *Store) Applied(key string) (bool, error) {
	var one int
	err := s.pool.QueryRow(context.Background(), `SELECT 1 FROM dedupe WHERE key = $1`, key).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}
