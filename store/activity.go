package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store/storage"
)

// # Patient indexes
//
// Three buckets let the periodic jobs and the staff lists read only the
// patients they are about, instead of decoding every state:
//
//	activity     last activity(8) | patient -> empty
//	visit_dates  visit date(8) | patient -> empty
//	patient_idx  patient -> last activity(8) | visit date(8)
//
// Last activity is LastActivity(state): the later of the patient's last
// message and their visit. The retention purge walks activity from its
// start up to the cutoff, so its cost is that of what expires. visit_dates
// lists the patients by visit date (/today, visits of the last 72 h).
// patient_idx holds each patient's current keys, so a step that changes
// them deletes the old entries without decoding the old state. A zero
// time has no entry.
//
// The entries are written by the step that writes the state, in its
// transaction (indexPatient), and removed with the patient's erasure
// (unindexPatient). A state set aside as unreadable keeps its entries:
// the rest of that patient's data still expires with them. Files of
// schema 3 and older had no such buckets; Open builds them
// (upgradeIndexes).

var (
	bActivity   = []byte("activity")
	bVisitDates = []byte("visit_dates")
	bPatientIdx = []byte("patient_idx")
	// derivedBuckets are rebuilt from the states, never copied: Counts
	// and a migration leave them out.
	derivedBuckets = [][]byte{bTimerIdx, bActivity, bVisitDates, bPatientIdx, bByPatient}
)

// LastActivity is storage.LastActivity, when the patient was last heard from or seen.
func LastActivity(st engine.State) time.Time { return storage.LastActivity(st) }

// ActivityGrain is the step of the last-activity index: a patient's last
// activity is indexed rounded up to it. Every message moves the patient's
// last activity, and moving its entry rewrote two random pages (the old
// activity entry's and patient_idx's) at every step, a third of the pages
// a message wrote; rounded up to the hour, only a conversation's first
// message of each hour moves it. Rounding up, never down, keeps the
// purge from erasing anyone early: an entry is never earlier than the
// activity, so InactiveBefore lists a patient at most an hour later than
// the exact time would, and the purge, which runs daily and checks the
// exact time again before it erases, is late by as much at most.
const ActivityGrain = time.Hour

// indexTimes returns the two times a state is indexed by: the last
// activity rounded up to ActivityGrain, and the visit.
func indexTimes(st engine.State) (last, visit time.Time) {
	if st.Visit != nil {
		visit = st.Visit.At
	}
	return roundUp(LastActivity(st), ActivityGrain), visit
}

// roundUp returns t rounded up to a multiple of d since the zero time
// (the zero time stays zero: no entry).
func roundUp(t time.Time, d time.Duration) time.Time {
	if t.IsZero() {
		return t
	}
	r := t.Truncate(d)
	if r.Before(t) {
		r = r.Add(d)
	}
	return r
}

// indexPatient points the patient indexes at st's times, replacing the
// patient's earlier entries, inside the step's transaction.
func indexPatient(tx *bolt.Tx, p engine.PatientID, st engine.State) error {
	last, visit := indexTimes(st)
	var want [16]byte // a zero time is 8 zero bytes
	binary.BigEndian.PutUint64(want[:8], uint64(timeNS(last)))
	binary.BigEndian.PutUint64(want[8:], uint64(timeNS(visit)))
	rev := tx.Bucket(bPatientIdx)
	old := rev.Get([]byte(p))
	if bytes.Equal(old, want[:]) {
		return nil // the common case for steps that change neither
	}
	old = bytes.Clone(old)
	if len(old) != 16 {
		old = make([]byte, 16)
	}
	if err := moveEntry(tx.Bucket(bActivity), p, old[:8], want[:8]); err != nil {
		return err
	}
	if err := moveEntry(tx.Bucket(bVisitDates), p, old[8:], want[8:]); err != nil {
		return err
	}
	return rev.Put([]byte(p), bytes.Clone(want[:]))
}

// moveEntry replaces p's entry in an index bucket keyed at time from with
// one at time to (8 bytes each; all zero: no entry).
func moveEntry(b *bolt.Bucket, p engine.PatientID, from, to []byte) error {
	if bytes.Equal(from, to) {
		return nil
	}
	if !isZero(from) {
		if err := b.Delete(append(bytes.Clone(from), p...)); err != nil {
			return err
		}
	}
	if isZero(to) {
		return nil
	}
	return b.Put(append(bytes.Clone(to), p...), nil)
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// unindexPatient removes the patient's index entries (erasure).
func unindexPatient(tx *bolt.Tx, p engine.PatientID) error {
	rev := tx.Bucket(bPatientIdx)
	old := rev.Get([]byte(p))
	if old == nil {
		return nil
	}
	old = bytes.Clone(old)
	if len(old) == 16 {
		for i, b := range []*bolt.Bucket{tx.Bucket(bActivity), tx.Bucket(bVisitDates)} {
			if part := old[i*8 : i*8+8]; !isZero(part) {
				if err := b.Delete(append(part, p...)); err != nil {
					return err
				}
			}
		}
	}
	return rev.Delete([]byte(p))
}

// upgradeIndexes builds the patient indexes of a file older than schema 4
// from its states (JSON or binary, see DecodeState), and by_patient from
// its records, inside Open's transaction. A state that cannot be decoded
// gets no entries (its quarantine at the next read keeps none either).
func upgradeIndexes(tx *bolt.Tx) error {
	for _, name := range [][]byte{bActivity, bVisitDates, bPatientIdx, bByPatient} {
		if err := tx.DeleteBucket(name); err != nil && tx.Bucket(name) != nil {
			return err
		}
		if _, err := tx.CreateBucket(name); err != nil {
			return err
		}
	}
	if err := upgradeByPatient(tx); err != nil {
		return err
	}
	return tx.Bucket(bStates).ForEach(func(k, v []byte) error {
		if bytes.HasPrefix(k, []byte("escalation:")) {
			return nil
		}
		st, err := DecodeState(v)
		if err != nil {
			return nil
		}
		return indexPatient(tx, engine.PatientID(bytes.Clone(k)), st)
	})
}

// InactiveBefore returns up to limit patients whose last activity (see
// LastActivity), rounded up to ActivityGrain, is before t, least recently
// active first: a patient is listed at most ActivityGrain late, never
// early (callers check the exact time before they act). It reads only
// those entries of the last-activity index, so its cost is O(log n +
// limit) whatever the number of patients. A patient whose state was set
// aside as unreadable is still listed: the rest of their data expires.
func (s *Store) InactiveBefore(t time.Time, limit int) ([]engine.PatientID, error) {
	var out []engine.PatientID
	lim := timeKey(t)
	err := s.db.View(func(tx *bolt.Tx) error {
		out = nil
		c := tx.Bucket(bActivity).Cursor()
		for k, _ := c.First(); k != nil && len(out) < limit; k, _ = c.Next() {
			if len(k) < 8 {
				return fmt.Errorf("%w: activity key %q", ErrCorrupt, k)
			}
			if bytes.Compare(k[:8], lim) >= 0 {
				break
			}
			out = append(out, engine.PatientID(k[8:]))
		}
		return nil
	})
	return out, err
}

// VisitedSince calls fn with the state of every patient whose current
// visit is at or after t, oldest visit first, reading only those patients
// (the visit-date index): /today lists the visits of the last 72 hours
// without decoding every state. fn must not call back into the store. A
// state that cannot be decoded is passed over.
func (s *Store) VisitedSince(t time.Time, fn func(engine.State) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		states := tx.Bucket(bStates)
		c := tx.Bucket(bVisitDates).Cursor()
		for k, _ := c.Seek(timeKey(t)); k != nil; k, _ = c.Next() {
			if len(k) < 8 {
				return fmt.Errorf("%w: visit_dates key %q", ErrCorrupt, k)
			}
			if binary.BigEndian.Uint64(k[:8]) == 0 {
				continue
			}
			raw := states.Get(k[8:])
			if raw == nil {
				continue // set aside as unreadable
			}
			st, err := DecodeState(raw)
			if err != nil {
				continue
			}
			if err := fn(st); err != nil {
				return err
			}
		}
		return nil
	})
}

// checkIndexes reports patient index entries that do not match each other
// (at most 100), for Check.
func checkIndexes(tx *bolt.Tx) []string {
	var out []string
	act, vis := tx.Bucket(bActivity), tx.Bucket(bVisitDates)
	n := 0
	tx.Bucket(bPatientIdx).ForEach(func(k, v []byte) error {
		if len(out) >= 100 {
			return nil
		}
		if len(v) != 16 {
			out = append(out, fmt.Sprintf("patient index %q: bad record", k))
			return nil
		}
		for i, b := range []*bolt.Bucket{act, vis} {
			if part := v[i*8 : i*8+8]; !isZero(part) && !keyExists(b, append(bytes.Clone(part), k...)) {
				out = append(out, fmt.Sprintf("patient index %q: its %s entry is missing", k, []string{"activity", "visit_dates"}[i]))
			} else if !isZero(part) {
				n++
			}
		}
		return nil
	})
	if entries := act.Stats().KeyN + vis.Stats().KeyN; len(out) == 0 && entries != n {
		out = append(out, fmt.Sprintf("patient indexes: %d entries, %d expected from patient_idx", entries, n))
	}
	return out
}
