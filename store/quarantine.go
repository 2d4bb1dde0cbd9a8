package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store/storage"
)

// # Quarantine
//
// A record that cannot be decoded (a patient state, an outbox entry, a
// timer key, an escalation record) must not stop everyone else: a poll
// loop that retries one update forever processes no later update, so
// another patient's red flag would wait behind it. The store therefore
// moves such a record, bytes unchanged, into the quarantine bucket, writes
// an audit line and queues a staff notice, all in one transaction, and
// carries on without it. A patient whose state was quarantined starts from
// a fresh state, so their message is still triaged and a red flag still
// escalates. `aftercare check` lists what is in quarantine.

// bQuarantine holds records set aside because they could not be decoded:
// patient | 0x00 | seq(8) -> Quarantined (JSON). The patient is empty for
// records that name none (a malformed timer key).
var bQuarantine = []byte("quarantine")

// Kinds of quarantined records (see storage.QuarantineState).
const (
	QuarantineState      = storage.QuarantineState
	QuarantineOutbox     = storage.QuarantineOutbox
	QuarantineTimer      = storage.QuarantineTimer
	QuarantineEscalation = storage.QuarantineEscalation
)

// Quarantined is storage.Quarantined, a record set aside because it could not be decoded.
type Quarantined = storage.Quarantined

// QuarantineNotice is storage.QuarantineNotice, who is told about a quarantined record.
type QuarantineNotice = storage.QuarantineNotice

// SetQuarantineNotice sets who is told when a record is quarantined.
// Without one, quarantined records are only audited. Call it before the
// store is in use by other goroutines, or at any time: it is safe for
// concurrent use.
func (s *Store) SetQuarantineNotice(f QuarantineNotice) { s.notice.Store(&f) }

// quarantine moves the record key of bucket into quarantine (the caller
// has found that value cannot be decoded), audits it and queues the staff
// notice, inside tx.
func (s *Store) quarantine(tx *bolt.Tx, bucket []byte, q Quarantined) error {
	q.Key, q.Value = bytes.Clone(q.Key), bytes.Clone(q.Value)
	if err := tx.Bucket(bucket).Delete(q.Key); err != nil {
		return err
	}
	if bytes.Equal(bucket, bStates) {
		if err := bumpStates(tx); err != nil {
			return err
		}
	}
	qb := tx.Bucket(bQuarantine)
	seq, _ := qb.NextSequence()
	q.Seq = seq
	b, err := json.Marshal(q)
	if err != nil {
		return err
	}
	if err := qb.Put(append(idxKey(q.Patient, ""), u64(seq)...), b); err != nil {
		return err
	}
	detail := fmt.Sprintf("%s record could not be read; kept as quarantine #%d", q.Kind, seq)
	if q.Kind == QuarantineState {
		detail += "; the patient continues from a fresh state"
	}
	if err := putAudit(tx, []engine.Audit{{At: q.At, Actor: "system", Action: "record_quarantined", Patient: q.Patient, Detail: detail}}); err != nil {
		return err
	}
	if f := s.notice.Load(); f != nil && *f != nil {
		return putOutbound(tx, (*f)(q), nil)
	}
	return nil
}

// badRecord is a record a read-only scan could not decode.
type badRecord struct {
	key     []byte
	patient engine.PatientID
	reason  string
}

// quarantineFound quarantines records a read-only scan of bucket could not
// decode, unless they went away or were rewritten meanwhile (stillBad, when
// set, checks the value again).
func (s *Store) quarantineFound(kind string, bucket []byte, bad []badRecord, stillBad func(v []byte) bool) error {
	if len(bad) == 0 {
		return nil
	}
	now := time.Now()
	return s.commit.do(context.Background(), func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		for _, r := range bad {
			if !keyExists(b, r.key) {
				continue
			}
			v := b.Get(r.key)
			if stillBad != nil && !stillBad(v) {
				continue
			}
			if err := s.quarantine(tx, bucket, Quarantined{Patient: r.patient, Kind: kind, Key: r.key, Value: v, At: now, Reason: r.reason}); err != nil {
				return err
			}
		}
		return nil
	})
}

// keyExists reports whether k is in b (timer values are empty, so Get
// alone does not tell a missing key from an empty value).
func keyExists(b *bolt.Bucket, k []byte) bool {
	got, _ := b.Cursor().Seek(k)
	return got != nil && bytes.Equal(got, k)
}

// outboxDestination reads an outbox entry's destination from its key.
func outboxDestination(platform string, k []byte) engine.PatientID {
	p := outboxPrefix(platform)
	if len(k) > len(p)+9 {
		return engine.PatientID(k[len(p)+9:])
	}
	return ""
}

// Quarantine returns the records set aside, oldest first, for `aftercare
// check` and staff tools.
func (s *Store) Quarantine() ([]Quarantined, error) {
	var out []Quarantined
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		out, err = listQuarantine(tx)
		return err
	})
	return out, err
}

func listQuarantine(tx *bolt.Tx) ([]Quarantined, error) {
	var out []Quarantined
	err := tx.Bucket(bQuarantine).ForEach(func(k, v []byte) error {
		var q Quarantined
		if err := json.Unmarshal(v, &q); err != nil {
			return fmt.Errorf("%w: quarantine/%q: %v", ErrCorrupt, k, err)
		}
		if len(k) >= 8 {
			q.Seq = binary.BigEndian.Uint64(k[len(k)-8:])
		}
		out = append(out, q)
		return nil
	})
	// Oldest first: keys sort by patient, the sequence gives the order.
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out, err
}
