package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store/storage"
)

// StateRaw returns a patient's stored state and a copy of its raw bytes
// (nil when not stored), for Step.Prepared.
func (s *Store) StateRaw(id engine.PatientID) (engine.State, []byte, error) {
	var st engine.State
	var raw []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bStates).Get([]byte(id))
		if v == nil {
			return nil
		}
		raw = bytes.Clone(stateBody(v))
		var err error
		st, err = DecodeState(v)
		return err
	})
	return st, raw, err
}

// State returns a patient's stored state.
func (s *Store) State(id engine.PatientID) (engine.State, bool, error) {
	var st engine.State
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bStates).Get([]byte(id))
		if raw == nil {
			return nil
		}
		found = true
		var err error
		st, err = DecodeState(raw)
		return err
	})
	return st, found, err
}

// Audit returns the audit trail, oldest first.
func (s *Store) Audit() ([]engine.Audit, error) {
	return decodeAll[engine.Audit](s, bAudit)
}

// decodeAll decodes every value of a bucket, in key order.
func decodeAll[T any](s *Store, bucket []byte) ([]T, error) {
	var out []T
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			var x T
			if err := json.Unmarshal(v, &x); err != nil {
				return fmt.Errorf("%w: %s/%x: %v", ErrCorrupt, bucket, k, err)
			}
			out = append(out, x)
			return nil
		})
	})
	return out, err
}

// AppendAudit adds lines to the audit trail, for actions outside a patient
// step: reads of patient data (export, backup, a staff member viewing a
// timeline) must leave a trace of who read what. Lines name patients by ID
// and never carry patient text. While queued, the write gives up when ctx
// ends.
func (s *Store) AppendAudit(ctx context.Context, as ...engine.Audit) error {
	if len(as) == 0 {
		return nil
	}
	return s.commit.do(ctx, func(tx *bolt.Tx) error { return putAudit(tx, as) })
}

func putAudit(tx *bolt.Tx, as []engine.Audit) error {
	ab := tx.Bucket(bAudit)
	for _, a := range as {
		seq, _ := ab.NextSequence()
		b, err := json.Marshal(a)
		if err != nil {
			return err
		}
		if err := ab.Put(u64(seq), b); err != nil {
			return err
		}
		if err := indexRecord(tx, a.Patient, byAudit, u64(seq)); err != nil {
			return err
		}
	}
	return nil
}

// Patients calls fn with every stored patient state, in ID order. fn must
// not call back into the store. Escalation ladders are not patients and
// are not listed.
//
// A state that cannot be decoded is passed over and quarantined (the
// patient continues from a fresh state at their next step).
func (s *Store) Patients(fn func(engine.State) error) error {
	var bad []badRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bStates).ForEach(func(k, v []byte) error {
			if strings.HasPrefix(string(k), "escalation:") {
				return nil
			}
			st, err := DecodeState(v)
			if err != nil {
				bad = append(bad, badRecord{key: bytes.Clone(k), patient: engine.PatientID(k), reason: err.Error()})
				return nil
			}
			return fn(st)
		})
	})
	if err != nil {
		return err
	}
	return s.quarantineFound(QuarantineState, bStates, bad, func(v []byte) bool {
		_, err := DecodeState(v)
		return err != nil
	})
}

// PatientIDs returns the IDs of the stored patients on platform, in ID
// order, without decoding their states (so one unreadable state does not
// hide the others). Escalation ladders are not patients and are not listed.
func (s *Store) PatientIDs(platform string) ([]engine.PatientID, error) {
	var out []engine.PatientID
	pre := []byte(platform + ":")
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bStates).Cursor()
		for k, _ := c.Seek(pre); k != nil && bytes.HasPrefix(k, pre); k, _ = c.Next() {
			out = append(out, engine.PatientID(k))
		}
		return nil
	})
	return out, err
}

// ReadMarks returns the read marks of platform's patients (see
// SetReadMarks), keyed by patient.
func (s *Store) ReadMarks(platform string) (map[engine.PatientID]string, error) {
	out := make(map[engine.PatientID]string)
	pre := []byte(platform + ":")
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bReadMarks).Cursor()
		for k, v := c.Seek(pre); k != nil && bytes.HasPrefix(k, pre); k, v = c.Next() {
			out[engine.PatientID(k)] = string(v)
		}
		return nil
	})
	return out, err
}

// SetReadMarks stores, in one transaction, how far each patient's platform
// conversation was read. A mark is the adapter's own string (for Discord
// the DM channel and the newest message committed from it); the store keeps
// it without interpreting it, so a platform that loses messages while the
// bot is down can read them back from where it stopped. Marks of patients
// without a stored state are not kept: an erased patient stays erased.
func (s *Store) SetReadMarks(marks map[engine.PatientID]string) error {
	if len(marks) == 0 {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		states, b := tx.Bucket(bStates), tx.Bucket(bReadMarks)
		for p, m := range marks {
			if states.Get([]byte(p)) == nil {
				continue
			}
			if err := b.Put([]byte(p), []byte(m)); err != nil {
				return err
			}
		}
		return nil
	})
}

// Record is storage.Record, everything stored about one patient, for export.
type Record = storage.Record

// PatientRecord collects everything stored about a patient.
func (s *Store) PatientRecord(p engine.PatientID) (Record, error) {
	var r Record
	err := s.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bStates).Get([]byte(p))
		if raw == nil {
			return ErrNotFound
		}
		var err error
		if r.State, err = DecodeState(raw); err != nil {
			return err
		}
		c := tx.Bucket(bVisits).Cursor()
		pre := idxKey(p, "")
		for k, v := c.Seek(pre); k != nil && bytes.HasPrefix(k, pre); k, v = c.Next() {
			var vi engine.Visit
			if err := json.Unmarshal(v, &vi); err != nil {
				return err
			}
			r.Visits = append(r.Visits, vi)
		}
		r.Transcript = readTranscript(tx, p, 0)
		// Escalation and audit lines are keyed by sequence, not patient:
		// decode only those whose bytes name the patient, so a record costs
		// a byte scan of the others rather than decoding every one (the
		// desk's patient page with 10,000 patients on record).
		needle, _ := json.Marshal(p)
		needle = append([]byte(`"patient":`), needle...)
		if err := tx.Bucket(bEscalations).ForEach(func(_, v []byte) error {
			if !bytes.Contains(v, needle) {
				return nil
			}
			var e engine.Escalation
			if json.Unmarshal(v, &e) == nil && e.Patient == p {
				r.Escalations = append(r.Escalations, e)
			}
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bAudit).ForEach(func(_, v []byte) error {
			if !bytes.Contains(v, needle) {
				return nil
			}
			var a engine.Audit
			if json.Unmarshal(v, &a) == nil && a.Patient == p {
				r.Audit = append(r.Audit, a)
			}
			return nil
		})
	})
	return r, err
}
