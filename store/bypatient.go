package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/aftercare-clinic/aftercare/engine"
)

// # Records by patient
//
//	by_patient  patient | 0x00 | kind(1) | id -> empty
//
// lists the records of other buckets that name a patient inside their
// value, so erasing a patient (the retention purge, /erase) deletes them
// without decoding every audit line, escalation and invite of every
// patient: kind 'a' is an audit line (id: seq(8)), 'e' an escalation
// (id(8)), 'i' an invite the patient used (id: the token). The entries
// are written with the records, in the same transaction; an entry whose
// record is gone (an escalation set aside as unreadable) is harmless, as
// erasing deletes what is there. Files of schema 3 and older get the
// bucket built on open (upgradeIndexes).

var bByPatient = []byte("by_patient")

// Kinds of by_patient entries.
const (
	byAudit      = 'a'
	byEscalation = 'e'
	byInvite     = 'i'
)

func byPatientKey(p engine.PatientID, kind byte, id []byte) []byte {
	k := make([]byte, 0, len(p)+2+len(id))
	k = append(k, p...)
	k = append(k, 0, kind)
	return append(k, id...)
}

// indexRecord files a record naming patient p under p; no patient, no entry.
func indexRecord(tx *bolt.Tx, p engine.PatientID, kind byte, id []byte) error {
	if p == "" {
		return nil
	}
	return tx.Bucket(bByPatient).Put(byPatientKey(p, kind, id), nil)
}

// eraseRecords deletes p's audit lines, escalations (and their ladders)
// and used invites through the by_patient entries, and the entries.
func eraseRecords(tx *bolt.Tx, p engine.PatientID) error {
	pre := idxKey(p, "")
	idx := tx.Bucket(bByPatient)
	var keys [][]byte
	c := idx.Cursor()
	for k, _ := c.Seek(pre); k != nil && bytes.HasPrefix(k, pre); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	audit, escs, invites := tx.Bucket(bAudit), tx.Bucket(bEscalations), tx.Bucket(bInvites)
	for _, k := range keys {
		if len(k) < len(pre)+1 {
			return fmt.Errorf("%w: by_patient key %q", ErrCorrupt, k)
		}
		kind, id := k[len(pre)], k[len(pre)+1:]
		var err error
		switch kind {
		case byAudit:
			err = audit.Delete(id)
		case byEscalation:
			if len(id) == 8 {
				if err = deleteTimers(tx, EscalationOwner(binary.BigEndian.Uint64(id))); err == nil {
					err = escs.Delete(id)
				}
			}
		case byInvite:
			err = invites.Delete(id)
		}
		if err != nil {
			return err
		}
		if err := idx.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// upgradeByPatient builds by_patient from the records of a file older
// than schema 4.
func upgradeByPatient(tx *bolt.Tx) error {
	scan := func(b []byte, kind byte, patient func(v []byte) engine.PatientID) error {
		return tx.Bucket(b).ForEach(func(k, v []byte) error {
			return indexRecord(tx, patient(v), kind, bytes.Clone(k))
		})
	}
	if err := scan(bAudit, byAudit, func(v []byte) engine.PatientID {
		var a engine.Audit
		json.Unmarshal(v, &a)
		return a.Patient
	}); err != nil {
		return err
	}
	if err := scan(bEscalations, byEscalation, func(v []byte) engine.PatientID {
		var e engine.Escalation
		json.Unmarshal(v, &e)
		return e.Patient
	}); err != nil {
		return err
	}
	return scan(bInvites, byInvite, func(v []byte) engine.PatientID {
		var inv engine.Invite
		json.Unmarshal(v, &inv)
		return inv.UsedBy
	})
}
