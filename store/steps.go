package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/aftercare-clinic/aftercare/engine"
)

// Step is what Apply needs to know about the step it commits.
type Step struct {
	// Patient is the conversation the step belongs to.
	Patient engine.PatientID
	// Dedupe, when set, is the platform update's key: a step with a key
	// already committed is skipped (Apply returns false, nil).
	Dedupe string
	// Due, when set, is the timer being fired: it is removed in the same
	// transaction, and the step is skipped when it is no longer there.
	Due *Due
	// Invite, when set, is an invite token the patient presented: it is
	// resolved, and used up when valid, in the same transaction.
	Invite string
	// Prepared, when set, is the step's result computed outside the
	// transaction. It is committed as is when the stored state is still
	// exactly the one it was computed from; otherwise fn runs as usual.
	// This keeps decoding, the engine and encoding out of bbolt's single
	// writer, so steps of different patients use all cores.
	Prepared *Prepared
	// Now stamps dedupe keys and visit records, and checks invite expiry.
	Now time.Time
	// Heard, when set, is the patient's message or button press as it goes
	// into the conversation transcript, with the messages the step sends
	// the patient (see TranscriptLine).
	Heard *TranscriptLine
}

// Prepared is a step result computed from a known stored state.
type Prepared struct {
	// From is the stored state's raw bytes the result was computed from
	// (nil for a patient not stored yet).
	From []byte
	// Result is the step's result; State is Result.State, encoded.
	Result engine.Result
	State  []byte
	// Messages, when set, is Result.Messages encoded by EncodeMessages.
	Messages [][]byte
}

// Input is what Apply hands to a step function.
type Input struct {
	// State is the patient's stored state; Found is false for a new patient.
	State engine.State
	Found bool
	// Invite is the resolved invite when Step.Invite was set.
	Invite engine.InviteResult
}

// Apply loads the patient's state, calls fn with it, and commits fn's result
// in one transaction. It reports whether anything was committed: false when
// the dedupe key was already applied, the timer was already fired, or fn
// returned ErrSkip.
func (s *Store) Apply(ctx context.Context, st Step, fn func(Input) (engine.Result, error)) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	applied := false
	err := s.commit.do(ctx, func(tx *bolt.Tx) error {
		applied = false
		if st.Dedupe != "" && tx.Bucket(bDedupe).Get([]byte(st.Dedupe)) != nil {
			return nil
		}
		if st.Due != nil && tx.Bucket(bTimers).Get(timerKey(st.Due.At, st.Patient, st.Due.Key)) == nil {
			return nil
		}
		raw := tx.Bucket(bStates).Get([]byte(st.Patient))
		if pr := st.Prepared; pr != nil && st.Invite == "" && (raw == nil) == (pr.From == nil) && bytes.Equal(raw, pr.From) {
			if err := commit(tx, st, pr.Result, pr.State, pr.Messages); err != nil {
				return err
			}
			applied = true
			return nil
		}
		var state engine.State
		found := raw != nil
		if found {
			if err := json.Unmarshal(raw, &state); err != nil {
				// Set the unreadable state aside and go on from a fresh
				// one: the message is still triaged, a red flag escalates.
				q := Quarantined{Patient: st.Patient, Kind: QuarantineState, Key: []byte(st.Patient), Value: raw, At: st.Now, Reason: err.Error()}
				if err := s.quarantine(tx, bStates, q); err != nil {
					return err
				}
				state, found = engine.State{}, false
			}
		}
		in := Input{State: state, Found: found}
		if st.Invite != "" {
			in.Invite = resolveInvite(tx, st.Invite, st.Now)
		}
		res, err := fn(in)
		if errors.Is(err, ErrSkip) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := commit(tx, st, res, nil, nil); err != nil {
			return err
		}
		applied = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("apply %s: %w", st.Patient, err)
	}
	return applied, nil
}

// commit writes one step; stateBytes and encoded, when set, are res.State
// and res.Messages already encoded. Each bucket's part is a helper below,
// called in this order: erasure, state, fired timer, timers, escalation
// (and its ladder), messages, audit, visit, dedupe key, invite.
func commit(tx *bolt.Tx, st Step, res engine.Result, stateBytes []byte, encoded [][]byte) error {
	// A group may run a step twice, with the same result value: work on
	// copies, so IDs assigned in a rolled-back attempt never leak.
	res.Messages = append([]engine.Outbound(nil), res.Messages...)
	res.Audit = append([]engine.Audit(nil), res.Audit...)
	if res.Escalation != nil {
		e := *res.Escalation
		res.Escalation = &e
	}
	if res.Erase {
		if err := erase(tx, st.Patient); err != nil {
			return err
		}
		res.Audit = append(res.Audit, engine.Audit{At: st.Now, Actor: "system", Action: "erased", Detail: "all data of one patient erased"})
	}
	if err := commitState(tx, st, res, stateBytes); err != nil {
		return err
	}
	if err := commitFired(tx, st); err != nil {
		return err
	}
	ladder, err := commitTimers(tx, st.Patient, res.Timers)
	if err != nil {
		return err
	}
	escID, err := commitEscalation(tx, res.Escalation, ladder)
	if err != nil {
		return err
	}
	encoded = linkAlerts(res.Messages, encoded, escID)
	if err := putOutbound(tx, res.Messages, encoded); err != nil {
		return err
	}
	if err := putAudit(tx, res.Audit); err != nil {
		return err
	}
	if !res.Erase {
		if err := putTranscript(tx, st, res.Messages); err != nil {
			return err
		}
	}
	if err := commitVisit(tx, st.Patient, res); err != nil {
		return err
	}
	if st.Dedupe != "" {
		if err := tx.Bucket(bDedupe).Put([]byte(st.Dedupe), timeKey(st.Now)); err != nil {
			return err
		}
	}
	if st.Invite != "" && res.InviteUsed {
		return useInvite(tx, st.Invite, st.Patient, st.Now)
	}
	return nil
}

// commitState writes the step's new state (states bucket) and points the
// patient indexes at it (activity.go); stateBytes, when set, is res.State
// already encoded. An erasure with no state left
// (retention purge) writes none back.
func commitState(tx *bolt.Tx, st Step, res engine.Result, stateBytes []byte) error {
	if res.Erase && res.State.Patient == "" {
		return nil
	}
	if err := indexPatient(tx, st.Patient, res.State); err != nil {
		return err
	}
	b := stateBytes
	if b == nil || res.Erase {
		var err error
		if b, err = json.Marshal(res.State); err != nil {
			return err
		}
	}
	return tx.Bucket(bStates).Put([]byte(st.Patient), b)
}

// commitFired removes the timer the step fired, if any (timers and
// timer_idx buckets). The index entry goes only when it still points at
// the fired time: the step may have rescheduled the same key.
func commitFired(tx *bolt.Tx, st Step) error {
	if st.Due == nil {
		return nil
	}
	timers, idx := tx.Bucket(bTimers), tx.Bucket(bTimerIdx)
	if err := timers.Delete(timerKey(st.Due.At, st.Patient, st.Due.Key)); err != nil {
		return err
	}
	ik := idxKey(st.Patient, st.Due.Key)
	if v := idx.Get(ik); v != nil && bytes.Equal(v, timeKey(st.Due.At)) {
		return idx.Delete(ik)
	}
	return nil
}

// commitTimers applies the step's timer changes to the patient's timers.
// The LadderKey timer is not the patient's: it is returned, to be filed
// under the step's escalation.
func commitTimers(tx *bolt.Tx, p engine.PatientID, ts []engine.Timer) (*engine.Timer, error) {
	var ladder *engine.Timer
	for _, t := range ts {
		if t.Key == LadderKey {
			t := t
			ladder = &t
			continue
		}
		if err := setTimer(tx, p, t); err != nil {
			return nil, err
		}
	}
	return ladder, nil
}

// commitEscalation stores the step's escalation, if any, under a new ID
// (escalations bucket) and starts its ladder when the step asked for one.
// It returns the new ID, or 0 without an escalation.
func commitEscalation(tx *bolt.Tx, e *engine.Escalation, ladder *engine.Timer) (uint64, error) {
	if e == nil {
		return 0, nil
	}
	eb := tx.Bucket(bEscalations)
	escID, _ := eb.NextSequence()
	e.ID = escID
	b, err := json.Marshal(e)
	if err != nil {
		return 0, err
	}
	if err := eb.Put(u64(escID), b); err != nil {
		return 0, err
	}
	if err := indexRecord(tx, e.Patient, byEscalation, u64(escID)); err != nil {
		return 0, err
	}
	if ladder != nil {
		if err := setTimer(tx, EscalationPatient(escID), engine.Timer{Key: "ladder:1", At: ladder.At}); err != nil {
			return 0, err
		}
	}
	return escID, nil
}

// linkAlerts ties the step's staff alerts to its new escalation escID
// (none when 0) and gives them the acknowledge button, in place. It
// returns encoded with the changed messages' encodings dropped, so they
// are encoded again (rare; red flags only); encoded is nil when it does
// not match ms.
func linkAlerts(ms []engine.Outbound, encoded [][]byte, escID uint64) [][]byte {
	if len(encoded) != len(ms) {
		encoded = nil
	}
	for i, m := range ms {
		if m.Kind == engine.KindAlert && m.EscalationID == 0 && escID != 0 {
			ms[i].EscalationID = escID
			ms[i].Choices = append(append([]engine.Choice(nil), m.Choices...), AckChoice(escID))
			if encoded != nil {
				encoded = append([][]byte(nil), encoded...)
				encoded[i] = nil
			}
		}
	}
	return encoded
}

// commitVisit records the patient's visit (visits bucket) when the step
// recorded one.
func commitVisit(tx *bolt.Tx, p engine.PatientID, res engine.Result) error {
	v := res.State.Visit
	if v == nil || !res.VisitRecorded {
		return nil
	}
	vb := tx.Bucket(bVisits)
	seq, _ := vb.NextSequence()
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return vb.Put(append(idxKey(p, ""), u64(seq)...), b)
}

func hasAudit(as []engine.Audit, action string) bool {
	for _, a := range as {
		if a.Action == action {
			return true
		}
	}
	return false
}

// Applied reports whether a step or staff command with the platform update
// key was already committed (and its key not yet pruned).
func (s *Store) Applied(key string) (bool, error) {
	var found bool
	err := s.db.View(func(tx *bolt.Tx) error {
		found = tx.Bucket(bDedupe).Get([]byte(key)) != nil
		return nil
	})
	return found, err
}

// PruneDedupe forgets dedupe keys applied before t; platforms never
// redeliver updates that old.
func (s *Store) PruneDedupe(t time.Time) (int, error) {
	n := 0
	lim := timeKey(t)
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bDedupe)
		keys, err := matching(b, func(v []byte) bool { return bytes.Compare(v, lim) < 0 })
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		n = len(keys)
		return nil
	})
	return n, err
}

// StaffStep is what a staff command leaves behind, committed together by
// ApplyStaff.
type StaffStep struct {
	// Dedupe is the platform update's key; empty for commands without one
	// (the console), which are then never recognised as redelivered.
	Dedupe string
	// Invite, when set, is a new invite the command created.
	Invite *engine.Invite
	// Messages are the command's answers to staff.
	Messages []engine.Outbound
	// Now stamps the dedupe key.
	Now time.Time
}

// ApplyStaff commits a staff command's invite, answers and update key in
// one transaction, once per key: when the key was already committed (the
// platform redelivered the update, or two deliveries raced) it commits
// nothing and returns false, so a redelivered /visit never creates a second
// invite. It may run its transaction function twice inside a group commit;
// the key check makes that harmless.
func (s *Store) ApplyStaff(ctx context.Context, st StaffStep) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	applied := false
	err := s.commit.do(ctx, func(tx *bolt.Tx) error {
		applied = false
		db := tx.Bucket(bDedupe)
		if st.Dedupe != "" && db.Get([]byte(st.Dedupe)) != nil {
			return nil
		}
		if inv := st.Invite; inv != nil {
			b := tx.Bucket(bInvites)
			if b.Get([]byte(inv.Token)) != nil {
				return errors.New("invite token collision")
			}
			v, err := json.Marshal(inv)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(inv.Token), v); err != nil {
				return err
			}
		}
		if err := putOutbound(tx, append([]engine.Outbound(nil), st.Messages...), nil); err != nil {
			return err
		}
		if st.Dedupe != "" {
			if err := db.Put([]byte(st.Dedupe), timeKey(st.Now)); err != nil {
				return err
			}
		}
		applied = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("apply staff command: %w", err)
	}
	return applied, nil
}

// erase deletes everything stored about a patient inside tx: state,
// timers, read mark, visits, transcript, escalations and their ladders, audit lines,
// queued messages and used invites. Dedupe keys hold no personal data and stay.
// Its cost is that of the patient's own records (prefix reads and the
// by_patient entries) plus a scan of the outbox, never of other patients'
// audit lines, escalations or invites.
func erase(tx *bolt.Tx, p engine.PatientID) error {
	if err := tx.Bucket(bStates).Delete([]byte(p)); err != nil {
		return err
	}
	if err := unindexPatient(tx, p); err != nil {
		return err
	}
	if err := deleteTimers(tx, p); err != nil {
		return err
	}
	if err := tx.Bucket(bReadMarks).Delete([]byte(p)); err != nil {
		return err
	}
	pre := idxKey(p, "")
	for _, b := range [][]byte{bVisits, bQuarantine, bTranscript} {
		c := tx.Bucket(b).Cursor()
		for k, _ := c.Seek(pre); k != nil && bytes.HasPrefix(k, pre); k, _ = c.Seek(pre) {
			if err := c.Delete(); err != nil {
				return err
			}
		}
	}
	if err := eraseRecords(tx, p); err != nil {
		return err
	}
	// Queued messages are few (they leave as they are sent): scanned.
	filters := map[string]func(v []byte) bool{
		string(bOutbox): func(v []byte) bool {
			var m engine.Outbound
			return json.Unmarshal(v, &m) == nil && (m.To == p || m.Patient == p)
		},
	}
	for name, f := range filters {
		b := tx.Bucket([]byte(name))
		keys, err := matching(b, f)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
	}
	return nil
}

// matching returns copies of the keys whose values satisfy f. Deleting is
// done afterwards: deleting under a cursor can make it skip entries.
func matching(b *bolt.Bucket, f func(v []byte) bool) ([][]byte, error) {
	var keys [][]byte
	err := b.ForEach(func(k, v []byte) error {
		if f(v) {
			keys = append(keys, bytes.Clone(k))
		}
		return nil
	})
	return keys, err
}
