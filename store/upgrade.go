package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/aftercare-clinic/aftercare/engine"
)

// upgrade brings a file written by an older version of this package to
// SchemaVersion, inside tx (Open's setup transaction: all or nothing).
// from is the file's schema version.
//
// Schema 1 to 2: timers were keyed by a bare owner string, and an
// escalation's ladder timers were filed under the pseudo patient
// "escalation:<id>". Schema 2 tags every owner with its kind (see
// ownerKey), so the store keeps typed owners and no patient ID can pass
// for an escalation. Both timer buckets are rewritten; a timer key that
// was already malformed is left as it was, to be quarantined on its first
// read like any other.
//
// Schema 2 to 3: states may be stored in binary (see EncodeState). Nothing
// is rewritten: a JSON state is still read, and written in binary at the
// patient's next step; the new number keeps an older aftercare, which
// could not read binary states, from opening the file.
//
// Schema 3 to 4: the patient indexes (activity, visit_dates, patient_idx)
// are built from the states, and by_patient from the audit lines,
// escalations and used invites (upgradeIndexes), so retention, /today and
// erasure read only the patients and records they are about.
//
// Schema 4 to 5: the transcript becomes an append-only log keyed by its
// sequence, each patient's lines chained from a head in the state record
// (upgradeTranscript4, transcript.go), so a step's lines land on the
// rightmost pages instead of a random page each.
//
// The steps run in order, so a schema 1 file goes through every one; they
// share Open's transaction, so a crash leaves the file at its old version,
// to be upgraded again.
func upgrade(tx *bolt.Tx, from uint64) error {
	if from < 2 {
		if err := upgradeTimers1(tx); err != nil {
			return fmt.Errorf("upgrade schema 1 to 2: %w", err)
		}
	}
	if from < 4 {
		if err := upgradeIndexes(tx); err != nil {
			return fmt.Errorf("upgrade schema 3 to 4 (patient indexes): %w", err)
		}
	}
	if from < 5 {
		if err := upgradeTranscript4(tx, time.Now().UTC()); err != nil {
			return fmt.Errorf("upgrade schema 4 to 5 (transcript log): %w", err)
		}
	}
	return tx.Bucket(bMeta).Put([]byte("schema"), u64(SchemaVersion))
}

// upgradeTimers1 rewrites schema 1 timers (due | owner | 0x00 | key) and
// rebuilds the timer index from them.
func upgradeTimers1(tx *bolt.Tx) error {
	timers, idx := tx.Bucket(bTimers), tx.Bucket(bTimerIdx)
	var old [][]byte
	if err := timers.ForEach(func(k, _ []byte) error {
		old = append(old, bytes.Clone(k))
		return nil
	}); err != nil {
		return err
	}
	var oldIdx [][]byte
	if err := idx.ForEach(func(k, _ []byte) error {
		oldIdx = append(oldIdx, bytes.Clone(k))
		return nil
	}); err != nil {
		return err
	}
	for _, k := range oldIdx {
		if err := idx.Delete(k); err != nil {
			return err
		}
	}
	type moved struct{ from, to []byte }
	var ms []moved
	for _, k := range old {
		if len(k) < 10 || bytes.IndexByte(k[8:], 0) < 0 {
			continue // malformed already: left for the quarantine
		}
		rest := k[8:]
		i := bytes.IndexByte(rest, 0)
		ms = append(ms, moved{k, timerKey(timeAt(k[:8]), ownerV1(string(rest[:i])), string(rest[i+1:]))})
	}
	// Every old key goes before any new one is written, so an old key can
	// never delete a new one that happens to equal it.
	for _, m := range ms {
		if err := timers.Delete(m.from); err != nil {
			return err
		}
	}
	for _, m := range ms {
		if err := timers.Put(m.to, nil); err != nil {
			return err
		}
		if err := idx.Put(m.to[8:], bytes.Clone(m.to[:8])); err != nil {
			return err
		}
	}
	return nil
}

// ownerV1 reads a schema 1 timer owner.
func ownerV1(s string) Owner {
	if rest, ok := strings.CutPrefix(s, "escalation:"); ok {
		if id, err := strconv.ParseUint(rest, 10, 64); err == nil {
			return EscalationOwner(id)
		}
	}
	return PatientOwner(engine.PatientID(s))
}

func timeAt(b []byte) time.Time { return time.Unix(0, int64(binary.BigEndian.Uint64(b))).UTC() }
