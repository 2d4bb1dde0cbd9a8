package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store/storage"
)

var (
	bTranscript = []byte("transcript")
	bDeskLogins = []byte("desk_logins")
	// bDeskSessions: sha256(session ID) -> DeskSession (JSON).
	bDeskSessions = []byte("desk_sessions")
)

// Who wrote a transcript line (see storage.FromPatient).
const (
	FromPatient = storage.FromPatient
	FromBot     = storage.FromBot
	FromClinic  = storage.FromClinic
)

// TranscriptLine is storage.TranscriptLine, one message of a patient's conversation.
type TranscriptLine = storage.TranscriptLine

// putTranscript appends the step's transcript lines to the patient's
// chain, whose newest line is head, and returns the new head: the
// patient's message (st.Heard) and every message the step sends the
// patient. encoded, when not nil, is encodeTranscript(st, ms) done before
// the transaction.
func putTranscript(tx *bolt.Tx, st Step, ms []engine.Outbound, encoded [][]byte, head uint64) (uint64, error) {
	if encoded == nil {
		var err error
		if encoded, err = encodeTranscript(st, ms); err != nil {
			return 0, err
		}
	}
	return appendLines(tx, head, encoded)
}

// encodeTranscript encodes the step's transcript lines (see putTranscript
// and transcript.go): each a linePrefix and the line's JSON.
func encodeTranscript(st Step, ms []engine.Outbound) ([][]byte, error) {
	out := make([][]byte, 0, len(ms)+1)
	enc := func(l *TranscriptLine) error {
		b := linePrefix(st.Patient, 128+len(l.Text)+len(l.Choice)+len(l.Staff))
		if !jsonTimeOK(l.At) {
			v, err := json.Marshal(l) // reports the time it cannot write
			out = append(out, append(b, v...))
			return err
		}
		out = append(out, appendLineJSON(l, b))
		return nil
	}
	if st.Heard != nil {
		if err := enc(st.Heard); err != nil {
			return nil, err
		}
	}
	for _, m := range ms {
		if m.To != st.Patient || m.Channel != "" {
			continue
		}
		l := SentLine(m)
		if err := enc(&l); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// SentLine is storage.SentLine, the transcript line of a message sent to the patient.
func SentLine(m engine.Outbound) TranscriptLine { return storage.SentLine(m) }

// Transcript returns the patient's conversation, oldest first, at most the
// last limit lines (limit <= 0: all).
func (s *Store) Transcript(p engine.PatientID, limit int) ([]TranscriptLine, error) {
	var out []TranscriptLine
	err := s.db.View(func(tx *bolt.Tx) error {
		out = readTranscript(tx, p, limit)
		return nil
	})
	return out, err
}

// DeskLogin is storage.DeskLogin, a one-time sign-in link for the staff desk.
type DeskLogin = storage.DeskLogin

// Errors of UseDeskLogin (see storage.ErrLoginUnknown).
var (
	// ErrLoginUnknown is storage.ErrLoginUnknown.
	ErrLoginUnknown = storage.ErrLoginUnknown
	// ErrLoginExpired is storage.ErrLoginExpired.
	ErrLoginExpired = storage.ErrLoginExpired
	// ErrLoginUsed is storage.ErrLoginUsed.
	ErrLoginUsed = storage.ErrLoginUsed
)

// PutDeskLogin stores a sign-in link under its token's hash, and drops links
// that expired more than a day before now (used or not), so the bucket
// stays small.
func (s *Store) PutDeskLogin(ctx context.Context, hash []byte, l DeskLogin, now time.Time) error {
	return s.commit.do(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bDeskLogins)
		old, err := matching(b, func(v []byte) bool {
			var x DeskLogin
			return json.Unmarshal(v, &x) != nil || x.Expires.Before(now.Add(-24*time.Hour))
		})
		if err != nil {
			return err
		}
		for _, k := range old {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		if b.Get(hash) != nil {
			return errors.New("sign-in token collision")
		}
		v, err := json.Marshal(l)
		if err != nil {
			return err
		}
		return b.Put(bytes.Clone(hash), v)
	})
}

// UseDeskLogin marks the link with this token hash as used and returns it,
// in one transaction, so two requests racing with one link cannot both
// succeed. Errors: ErrLoginUnknown, ErrLoginExpired, ErrLoginUsed.
func (s *Store) UseDeskLogin(ctx context.Context, hash []byte, now time.Time) (DeskLogin, error) {
	var l DeskLogin
	err := s.commit.do(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bDeskLogins)
		raw := b.Get(hash)
		if raw == nil {
			return ErrLoginUnknown
		}
		l = DeskLogin{}
		if err := json.Unmarshal(raw, &l); err != nil {
			return fmt.Errorf("%w: unreadable record", ErrLoginUnknown)
		}
		switch {
		case !l.Used.IsZero():
			return ErrLoginUsed
		case !now.Before(l.Expires):
			return ErrLoginExpired
		}
		l.Used = now
		v, err := json.Marshal(l)
		if err != nil {
			return err
		}
		return b.Put(bytes.Clone(hash), v)
	})
	return l, err
}

// PatientStatesRaw calls fn with every stored patient's ID and encoded
// state, in ID order, without decoding them: a caller that keeps decoded
// states can skip those whose bytes did not change. raw is valid only
// during fn (copy it to keep it); fn must not call back into the store.
// Escalation ladders are not patients and are not listed.
func (s *Store) PatientStatesRaw(fn func(id engine.PatientID, raw []byte) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bStates).ForEach(func(k, v []byte) error {
			if bytes.HasPrefix(k, []byte("escalation:")) {
				return nil
			}
			return fn(engine.PatientID(k), stateBody(v))
		})
	})
}

// OpenInvites returns the invites no patient has used yet and that are
// still valid at now, oldest visit first: the desk lists them on Today as
// "invited". Their visits carry the identity the clinic entered.
func (s *Store) OpenInvites(now time.Time) ([]engine.Invite, error) {
	var out []engine.Invite
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bInvites).ForEach(func(_, v []byte) error {
			var inv engine.Invite
			if json.Unmarshal(v, &inv) != nil || inv.UsedBy != "" || !now.Before(inv.Expires) {
				return nil
			}
			out = append(out, inv)
			return nil
		})
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Visit.At.Before(out[j].Visit.At) })
	return out, err
}

// bumpStates counts a change of the states bucket in its sequence, inside
// the transaction that makes it: every write or delete of a patient's
// state calls it, so StatesVersion changes with every change of a state.
func bumpStates(tx *bolt.Tx) error {
	b := tx.Bucket(bStates)
	return b.SetSequence(b.Sequence() + 1)
}

// StatesVersion is a number that changes whenever any patient's stored
// state changes (written, erased or set aside), so the desk can keep its
// lists of 10,000 patients without walking them while nothing changed.
func (s *Store) StatesVersion() (uint64, error) {
	var v uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		v = tx.Bucket(bStates).Sequence()
		return nil
	})
	return v, err
}

// DeskSession is storage.DeskSession, one signed-in staff browser on the desk.
type DeskSession = storage.DeskSession

// ErrSessionUnknown is storage.ErrSessionUnknown, returned by DeskSession
// when no session has this hash.
var ErrSessionUnknown = storage.ErrSessionUnknown

// PutDeskSession stores a new session under its ID's hash. A hash already
// stored is an error (a 256-bit random ID does not repeat).
func (s *Store) PutDeskSession(ctx context.Context, hash []byte, ds DeskSession) error {
	v, err := json.Marshal(ds)
	if err != nil {
		return err
	}
	return s.commit.do(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bDeskSessions)
		if b.Get(hash) != nil {
			return errors.New("desk session collision")
		}
		return b.Put(bytes.Clone(hash), v)
	})
}

// DeskSession returns the session with this ID hash, expired or not: the
// desk decides whether it still stands. Errors: ErrSessionUnknown.
func (s *Store) DeskSession(ctx context.Context, hash []byte) (DeskSession, error) {
	var ds DeskSession
	err := s.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bDeskSessions).Get(hash)
		if raw == nil {
			return ErrSessionUnknown
		}
		if err := json.Unmarshal(raw, &ds); err != nil {
			return fmt.Errorf("%w: unreadable record", ErrSessionUnknown)
		}
		return nil
	})
	return ds, err
}

// TouchDeskSession records that the session was used at seen. It only
// moves Seen forward (two instances touching at once keep the later
// time), and does nothing for a session that is gone, so it never brings
// back a session signed out meanwhile.
func (s *Store) TouchDeskSession(ctx context.Context, hash []byte, seen time.Time) error {
	return s.commit.do(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bDeskSessions)
		raw := b.Get(hash)
		if raw == nil {
			return nil
		}
		var ds DeskSession
		if err := json.Unmarshal(raw, &ds); err != nil {
			return nil // DeskSession refuses it; nothing to keep alive
		}
		if !seen.After(ds.Seen) {
			return nil
		}
		ds.Seen = seen
		v, err := json.Marshal(ds)
		if err != nil {
			return err
		}
		return b.Put(bytes.Clone(hash), v)
	})
}

// DeleteDeskSession ends the session with this ID hash (sign-out or
// expiry). Deleting a session that is gone is not an error.
func (s *Store) DeleteDeskSession(ctx context.Context, hash []byte) error {
	return s.commit.do(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bDeskSessions).Delete(hash)
	})
}

// DeleteStaffDeskSessions ends every session of one staff member, on
// every browser, and returns how many there were: for a staff member
// removed from the configuration, or signed out everywhere.
func (s *Store) DeleteStaffDeskSessions(ctx context.Context, staff string) (int, error) {
	return s.deleteDeskSessions(ctx, false, func(ds DeskSession) bool { return ds.Staff == staff })
}

// PruneDeskSessions deletes the sessions last seen before seenBefore or
// started before createdBefore (the desk passes now minus its idle and
// absolute limits), and unreadable ones, and returns how many it deleted.
func (s *Store) PruneDeskSessions(ctx context.Context, seenBefore, createdBefore time.Time) (int, error) {
	return s.deleteDeskSessions(ctx, true, func(ds DeskSession) bool {
		return ds.Seen.Before(seenBefore) || ds.Created.Before(createdBefore)
	})
}

// deleteDeskSessions deletes the sessions drop reports, and the unreadable
// ones if unreadable is set.
func (s *Store) deleteDeskSessions(ctx context.Context, unreadable bool, drop func(DeskSession) bool) (int, error) {
	var n int
	err := s.commit.do(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bDeskSessions)
		old, err := matching(b, func(v []byte) bool {
			var ds DeskSession
			if json.Unmarshal(v, &ds) != nil {
				return unreadable
			}
			return drop(ds)
		})
		if err != nil {
			return err
		}
		n = len(old) // fn may run twice: set, never add
		for _, k := range old {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	return n, err
}
