package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/aftercare-clinic/aftercare/engine"
)

// Walker receives every record of a database, for copying it to another
// backend (`aftercare migrate`). Values are the stored bytes (JSON; states
// stored in binary are handed on as JSON, see EncodeState), valid only
// during the call. A nil field skips that kind of record.
type Walker struct {
	State      func(p engine.PatientID, raw []byte) error
	Timer      func(d Due) error
	Outbox     func(id uint64, raw []byte) error
	Escalation func(id uint64, raw []byte) error
	Visit      func(id uint64, p engine.PatientID, raw []byte) error
	Audit      func(id uint64, raw []byte) error
	Dedupe     func(key string, at time.Time) error
	Invite     func(token string, raw []byte) error
	ReadMark   func(p engine.PatientID, mark string) error
	Quarantine func(q Quarantined) error
	Transcript func(p engine.PatientID, seq uint64, raw []byte) error
	DeskLogin  func(hash []byte, raw []byte) error
	// DeskSession gets each staff desk session under its ID's hash, so
	// staff stay signed in across a move to PostgreSQL.
	DeskSession func(hash []byte, ds DeskSession) error
}

// Counts returns the number of records of each kind, by bucket name: what
// a copy made with Walk must hold.
func (s *Store) Counts() (map[string]int, error) {
	out := map[string]int{}
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if bytes.Equal(b, bMeta) || slices.ContainsFunc(derivedBuckets, func(d []byte) bool { return bytes.Equal(b, d) }) {
				continue
			}
			out[string(b)] = tx.Bucket(b).Stats().KeyN
		}
		return nil
	})
	return out, err
}

// Walk calls w's functions with every record, in one read transaction (a
// consistent snapshot), kind by kind in key order.
func (s *Store) Walk(w Walker) error {
	return s.db.View(func(tx *bolt.Tx) error {
		each := func(b []byte, f func(k, v []byte) error) error {
			return tx.Bucket(b).ForEach(f)
		}
		seqAfterPatient := func(k []byte) (engine.PatientID, uint64, error) {
			i := bytes.IndexByte(k, 0)
			if i < 0 || len(k) != i+9 {
				return "", 0, fmt.Errorf("%w: key %q", ErrCorrupt, k)
			}
			return engine.PatientID(k[:i]), binary.BigEndian.Uint64(k[i+1:]), nil
		}
		if w.State != nil {
			if err := each(bStates, func(k, v []byte) error { return w.State(engine.PatientID(k), stateJSON(v)) }); err != nil {
				return err
			}
		}
		if w.Timer != nil {
			if err := each(bTimers, func(k, _ []byte) error {
				d, err := parseTimer(k)
				if err != nil {
					return err
				}
				return w.Timer(d)
			}); err != nil {
				return err
			}
		}
		if w.Outbox != nil {
			if err := each(bOutbox, func(k, v []byte) error {
				i := bytes.IndexByte(k, 0)
				if i < 0 || len(k) < i+10 {
					return fmt.Errorf("%w: outbox key %q", ErrCorrupt, k)
				}
				return w.Outbox(binary.BigEndian.Uint64(k[i+2:i+10]), v)
			}); err != nil {
				return err
			}
		}
		for _, kind := range []struct {
			b []byte
			f func(uint64, []byte) error
		}{{bEscalations, w.Escalation}, {bAudit, w.Audit}} {
			if kind.f == nil {
				continue
			}
			if err := each(kind.b, func(k, v []byte) error {
				if len(k) != 8 {
					return fmt.Errorf("%w: %s key %q", ErrCorrupt, kind.b, k)
				}
				return kind.f(binary.BigEndian.Uint64(k), v)
			}); err != nil {
				return err
			}
		}
		if w.Visit != nil {
			if err := each(bVisits, func(k, v []byte) error {
				p, seq, err := seqAfterPatient(k)
				if err != nil {
					return err
				}
				return w.Visit(seq, p, v)
			}); err != nil {
				return err
			}
		}
		if w.Dedupe != nil {
			if err := each(bDedupe, func(k, v []byte) error {
				if len(v) != 8 {
					return fmt.Errorf("%w: dedupe %q", ErrCorrupt, k)
				}
				return w.Dedupe(string(k), time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC())
			}); err != nil {
				return err
			}
		}
		if w.Invite != nil {
			if err := each(bInvites, func(k, v []byte) error { return w.Invite(string(k), v) }); err != nil {
				return err
			}
		}
		if w.ReadMark != nil {
			if err := each(bReadMarks, func(k, v []byte) error { return w.ReadMark(engine.PatientID(k), string(v)) }); err != nil {
				return err
			}
		}
		if w.Quarantine != nil {
			qs, err := listQuarantine(tx)
			if err != nil {
				return err
			}
			for _, q := range qs {
				if err := w.Quarantine(q); err != nil {
					return err
				}
			}
		}
		if w.Transcript != nil {
			if err := each(bTranscript, func(k, v []byte) error {
				p, _, line, ok := parseLine(v)
				if !ok || len(k) != 8 {
					return fmt.Errorf("%w: transcript %x", ErrCorrupt, k)
				}
				return w.Transcript(engine.PatientID(p), binary.BigEndian.Uint64(k), line)
			}); err != nil {
				return err
			}
		}
		if w.DeskLogin != nil {
			if err := each(bDeskLogins, func(k, v []byte) error { return w.DeskLogin(k, v) }); err != nil {
				return err
			}
		}
		if w.DeskSession != nil {
			if err := each(bDeskSessions, func(k, v []byte) error {
				var ds DeskSession
				if err := json.Unmarshal(v, &ds); err != nil {
					return fmt.Errorf("%w: desk session: %v", ErrCorrupt, err)
				}
				return w.DeskSession(k, ds)
			}); err != nil {
				return err
			}
		}
		return nil
	})
}
