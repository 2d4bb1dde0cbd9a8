package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/aftercare-clinic/aftercare/engine"
)

func timerKey(due time.Time, p engine.PatientID, key string) []byte {
	b := make([]byte, 0, 8+len(p)+1+len(key))
	b = append(b, timeKey(due)...)
	b = append(b, p...)
	b = append(b, 0)
	return append(b, key...)
}

// Due is a timer that is due or will be.
type Due struct {
	Patient engine.PatientID
	Key     string
	At      time.Time
}

// setTimer schedules (or, with a zero At, cancels) one of p's timers,
// replacing the key's earlier time: the time-ordered entry and the index
// always change together.
func setTimer(tx *bolt.Tx, p engine.PatientID, t engine.Timer) error {
	timers, idx := tx.Bucket(bTimers), tx.Bucket(bTimerIdx)
	ik := idxKey(p, t.Key)
	if old := idx.Get(ik); old != nil {
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
	if err := timers.Put(timerKey(t.At, p, t.Key), nil); err != nil {
		return err
	}
	return idx.Put(ik, timeKey(t.At))
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
	rest := k[8:]
	i := bytes.IndexByte(rest, 0)
	if i < 0 {
		return Due{}, fmt.Errorf("%w: timer key", ErrCorrupt)
	}
	return Due{
		At:      time.Unix(0, int64(binary.BigEndian.Uint64(k[:8]))).UTC(),
		Patient: engine.PatientID(rest[:i]),
		Key:     string(rest[i+1:]),
	}, nil
}

// Timers returns a patient's pending timers (for tests and staff tools).
func (s *Store) Timers(id engine.PatientID) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bTimerIdx).Cursor()
		p := idxKey(id, "")
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			out[string(k[len(p):])] = time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC()
		}
		return nil
	})
	return out, err
}

func deleteTimers(tx *bolt.Tx, p engine.PatientID) error {
	idx, timers := tx.Bucket(bTimerIdx), tx.Bucket(bTimers)
	pre := idxKey(p, "")
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
