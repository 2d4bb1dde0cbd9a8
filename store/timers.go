package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store/storage"
)

// OwnerKind is storage.OwnerKind, what a timer belongs to.
type OwnerKind = storage.OwnerKind

// The owners a timer can have (see storage.OwnerPatient).
const (
	// OwnerPatient is storage.OwnerPatient.
	OwnerPatient = storage.OwnerPatient
	// OwnerEscalation is storage.OwnerEscalation.
	OwnerEscalation = storage.OwnerEscalation
)

// Owner is storage.Owner, whose a timer is.
type Owner = storage.Owner

// PatientOwner is storage.PatientOwner, the owner of a patient's conversation timers.
func PatientOwner(p engine.PatientID) Owner { return storage.PatientOwner(p) }

// EscalationOwner is storage.EscalationOwner, the owner of escalation id's ladder timers.
func EscalationOwner(id uint64) Owner { return storage.EscalationOwner(id) }

// Due is storage.Due, a timer that is due or will be.
type Due = storage.Due

// Owner tags in timer keys (schema 2; see the package doc's layout).
const (
	tagPatient    = 'p'
	tagEscalation = 'e'
)

// ownerKey encodes o as it leads a timer_idx key: a tag byte, then the
// patient ID or the escalation ID in decimal (no 0x00 inside, so the
// separator after it is unambiguous).
func ownerKey(o Owner) []byte { return appendOwner(nil, o) }

// appendOwner appends ownerKey(o) to b.
func appendOwner(b []byte, o Owner) []byte {
	if o.Kind == OwnerEscalation {
		return strconv.AppendUint(append(b, tagEscalation), o.Escalation, 10)
	}
	return append(append(b, tagPatient), o.Patient...)
}

// timerIdxKey is the timer_idx key of o's timer key, built in one
// allocation (a step that sets timers builds several).
func timerIdxKey(o Owner, key string) []byte {
	b := appendOwner(make([]byte, 0, 2+len(o.Patient)+20+len(key)), o)
	b = append(b, 0)
	return append(b, key...)
}

// timerKey is the timers key of o's timer key due at due.
func timerKey(due time.Time, o Owner, key string) []byte {
	ns := due.UnixNano()
	if ns < 0 {
		ns = 0
	}
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 10+len(o.Patient)+20+len(key)), uint64(ns))
	b = append(appendOwner(b, o), 0)
	return append(b, key...)
}

// parseTimerIdx decodes a timer_idx key (a timers key without its time).
func parseTimerIdx(k []byte) (Owner, string, error) {
	i := bytes.IndexByte(k, 0)
	if i < 1 {
		return Owner{}, "", fmt.Errorf("%w: timer key", ErrCorrupt)
	}
	id, key := k[1:i], string(k[i+1:])
	switch k[0] {
	case tagPatient:
		return PatientOwner(engine.PatientID(id)), key, nil
	case tagEscalation:
		n, err := strconv.ParseUint(string(id), 10, 64)
		if err != nil {
			return Owner{}, "", fmt.Errorf("%w: timer key: escalation %q", ErrCorrupt, id)
		}
		return EscalationOwner(n), key, nil
	}
	return Owner{}, "", fmt.Errorf("%w: timer key: owner tag %q", ErrCorrupt, k[0])
}

// setTimer schedules (or, with a zero At, cancels) one of o's timers,
// replacing the key's earlier time: the time-ordered entry and the index
// always change together.
func setTimer(tx *bolt.Tx, o Owner, t engine.Timer) error {
	timers, idx := tx.Bucket(bTimers), tx.Bucket(bTimerIdx)
	ik := timerIdxKey(o, t.Key)
	old := idx.Get(ik)
	if old != nil && !t.At.IsZero() && bytes.Equal(old, timeKey(t.At)) && timers.Get(timerKey(t.At, o, t.Key)) != nil {
		return nil // already due then: rewriting it would dirty two pages for nothing
	}
	if old != nil {
		if err := timers.Delete(append(bytes.Clone(old), ik...)); err != nil {
			return err
		}
		if err := idx.Delete(ik); err != nil {
			return err
		}
	}
	if t.At.IsZero() {
		return nil
	}
	if err := timers.Put(timerKey(t.At, o, t.Key), nil); err != nil {
		return err
	}
	return idx.Put(ik, timeKey(t.At))
}

// takeTimer removes d if it is still scheduled at d.At and reports whether
// it was. The index entry goes only when it still points at d.At (a step
// may have rescheduled the same key meanwhile).
func takeTimer(tx *bolt.Tx, d Due) (bool, error) {
	timers, idx := tx.Bucket(bTimers), tx.Bucket(bTimerIdx)
	k := timerKey(d.At, d.Owner, d.Key)
	if timers.Get(k) == nil {
		return false, nil
	}
	if err := timers.Delete(k); err != nil {
		return false, err
	}
	ik := timerIdxKey(d.Owner, d.Key)
	if v := idx.Get(ik); v != nil && bytes.Equal(v, timeKey(d.At)) {
		return true, idx.Delete(ik)
	}
	return true, nil
}

// NextDue returns the earliest timer, without scanning the others.
// A malformed timer key is quarantined and passed over.
func (s *Store) NextDue() (Due, bool, error) {
	var d Due
	ok := false
	var bad []badRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		ok, bad = false, nil
		c := tx.Bucket(bTimers).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			var err error
			if d, err = parseTimer(k); err != nil {
				bad = append(bad, badRecord{key: bytes.Clone(k), reason: err.Error()})
				continue
			}
			ok = true
			return nil
		}
		return nil
	})
	if err != nil {
		return Due{}, false, err
	}
	return d, ok, s.quarantineTimers(bad)
}

// DueBefore returns up to limit timers due at or before now, earliest
// first. Malformed timer keys are quarantined and passed over, so they
// cannot hold up the timers behind them.
func (s *Store) DueBefore(now time.Time, limit int) ([]Due, error) {
	var out []Due
	var bad []badRecord
	end := timeKey(now)
	err := s.db.View(func(tx *bolt.Tx) error {
		out, bad = nil, nil
		c := tx.Bucket(bTimers).Cursor()
		for k, _ := c.First(); k != nil && len(out) < limit; k, _ = c.Next() {
			if len(k) >= 8 && bytes.Compare(k[:8], end) > 0 {
				break
			}
			d, err := parseTimer(k)
			if err != nil {
				bad = append(bad, badRecord{key: bytes.Clone(k), reason: err.Error()})
				continue
			}
			out = append(out, d)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, s.quarantineTimers(bad)
}

// quarantineTimers quarantines malformed timer keys (a timer is all key).
func (s *Store) quarantineTimers(bad []badRecord) error {
	return s.quarantineFound(QuarantineTimer, bTimers, bad, nil)
}

func parseTimer(k []byte) (Due, error) {
	if len(k) < 10 {
		return Due{}, fmt.Errorf("%w: timer key", ErrCorrupt)
	}
	o, key, err := parseTimerIdx(k[8:])
	if err != nil {
		return Due{}, err
	}
	return Due{Owner: o, Key: key, At: time.Unix(0, int64(binary.BigEndian.Uint64(k[:8]))).UTC()}, nil
}

// Timers returns a patient's pending timers (for tests and staff tools).
func (s *Store) Timers(id engine.PatientID) (map[string]time.Time, error) {
	return s.ownerTimers(PatientOwner(id))
}

// EscalationTimers returns an escalation's pending ladder timers (for
// tests and staff tools).
func (s *Store) EscalationTimers(id uint64) (map[string]time.Time, error) {
	return s.ownerTimers(EscalationOwner(id))
}

func (s *Store) ownerTimers(o Owner) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bTimerIdx).Cursor()
		p := timerIdxKey(o, "")
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			out[string(k[len(p):])] = time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC()
		}
		return nil
	})
	return out, err
}

// deleteTimers cancels every timer of o.
func deleteTimers(tx *bolt.Tx, o Owner) error {
	idx, timers := tx.Bucket(bTimerIdx), tx.Bucket(bTimers)
	pre := timerIdxKey(o, "")
	c := idx.Cursor()
	for k, v := c.Seek(pre); k != nil && bytes.HasPrefix(k, pre); k, v = c.Seek(pre) {
		if err := timers.Delete(append(bytes.Clone(v), k...)); err != nil {
			return err
		}
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}
