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
	"github.com/aftercare-clinic/aftercare/store/storage"
)

// Step is storage.Step, what Apply needs to know about the step it commits.
type Step = storage.Step

// Prepared is storage.Prepared, a step result computed from a known stored state.
type Prepared = storage.Prepared

// Input is storage.Input, what Apply hands to a step function.
type Input = storage.Input

// Apply loads the patient's state, calls fn with it, and commits fn's result
// in one transaction. It reports whether anything was committed: false when
// the dedupe key was already applied, the timer was already fired, or fn
// returned ErrSkip.
func (s *Store) Apply(ctx context.Context, st Step, fn func(Input) (engine.Result, error)) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if st.Due != nil && st.Due.Owner != PatientOwner(st.Patient) {
		return false, fmt.Errorf("apply %s: timer %s of %s: %w", st.Patient, st.Due.Key, st.Due.Owner, ErrOwner)
	}
	// The prepared step's transcript lines are encoded here too, in the
	// caller's goroutine, rather than in the single writer.
	var lines [][]byte
	if pr := st.Prepared; pr != nil && st.Invite == "" && !pr.Result.Erase {
		var err error
		if lines, err = encodeTranscript(st, pr.Result.Messages); err != nil {
			return false, fmt.Errorf("apply %s: %w", st.Patient, err)
		}
	}
	applied := false
	err := s.commit.do(ctx, func(tx *bolt.Tx) error {
		applied = false
		if st.Dedupe != "" && tx.Bucket(bDedupe).Get([]byte(st.Dedupe)) != nil {
			return nil
		}
		if st.Due != nil && tx.Bucket(bTimers).Get(timerKey(st.Due.At, PatientOwner(st.Patient), st.Due.Key)) == nil {
			return nil
		}
		raw := tx.Bucket(bStates).Get([]byte(st.Patient))
		head := headFor(tx, st.Patient, raw)
		if pr := st.Prepared; pr != nil && st.Invite == "" && (raw == nil) == (pr.From == nil) && bytes.Equal(stateBody(raw), pr.From) {
			if err := commit(tx, st, pr.Result, pr.State, pr.Messages, lines, head); err != nil {
				return err
			}
			applied = true
			return nil
		}
		var state engine.State
		found := raw != nil
		if found {
			var err error
			if state, err = DecodeState(raw); err != nil {
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
		if err := commit(tx, st, res, nil, nil, nil, head); err != nil {
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

// commit writes one step; stateBytes, encoded and lines, when set, are
// res.State, res.Messages and the transcript lines already encoded, and
// head is the patient's transcript head before the step (headFor). Each
// bucket's part is a helper below, called in this order: erasure,
// transcript, state (with the new head), fired timer, timers, escalation
// (and what st.OnEscalation adds to it), messages, audit, visit, dedupe
// key, invite.
func commit(tx *bolt.Tx, st Step, res engine.Result, stateBytes []byte, encoded, lines [][]byte, head uint64) error {
	// A group may run a step twice, with the same result value: work on
	// copies of what is changed in place (the escalation's ID and the
	// alerts linked to it, the erasure's audit line), so IDs assigned in a
	// rolled-back attempt never leak.
	if res.Escalation != nil {
		res.Messages = append([]engine.Outbound(nil), res.Messages...)
		e := *res.Escalation
		res.Escalation = &e
	}
	if res.Erase {
		if err := erase(tx, st.Patient, head); err != nil {
			return err
		}
		head = 0
		res.Audit = append(append([]engine.Audit(nil), res.Audit...), engine.Audit{At: st.Now, Actor: "system", Action: "erased", Detail: "all data of one patient erased"})
	}
	if !res.Erase {
		var err error
		if head, err = putTranscript(tx, st, res.Messages, lines, head); err != nil {
			return err
		}
	}
	if err := commitState(tx, st, res, stateBytes, head); err != nil {
		return err
	}
	if err := commitFired(tx, st); err != nil {
		return err
	}
	for _, t := range res.Timers {
		if err := setTimer(tx, PatientOwner(st.Patient), t); err != nil {
			return err
		}
	}
	escalated, err := commitEscalation(tx, res.Escalation, res.Messages, st.OnEscalation)
	if err != nil {
		return err
	}
	if escalated {
		encoded = nil // the caller may have changed the messages
	}
	if err := putOutbound(tx, res.Messages, encoded); err != nil {
		return err
	}
	if err := putAudit(tx, res.Audit); err != nil {
		return err
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

// commitState writes the step's new state (states bucket), headed by the
// patient's transcript head (transcript.go), and points the patient
// indexes at it (activity.go); stateBytes, when set, is res.State already
// encoded. An erasure with no state left (retention purge) writes none
// back.
func commitState(tx *bolt.Tx, st Step, res engine.Result, stateBytes []byte, head uint64) error {
	if res.Erase && res.State.Patient == "" {
		return nil
	}
	if err := indexPatient(tx, st.Patient, res.State); err != nil {
		return err
	}
	b := stateBytes
	if b == nil || res.Erase {
		var err error
		if b, err = EncodeState(res.State); err != nil {
			return err
		}
	}
	if err := tx.Bucket(bStates).Put([]byte(st.Patient), headedState(head, b)); err != nil {
		return err
	}
	return bumpStates(tx)
}

// commitFired removes the timer the step fired, if any (timers and
// timer_idx buckets).
func commitFired(tx *bolt.Tx, st Step) error {
	if st.Due == nil {
		return nil
	}
	_, err := takeTimer(tx, Due{Owner: PatientOwner(st.Patient), Key: st.Due.Key, At: st.Due.At})
	return err
}

// commitEscalation stores the step's escalation, if any, under a new ID
// (escalations bucket), then lets on (Step.OnEscalation) complete msgs and
// schedules the escalation timers it returns. It reports whether there was
// an escalation that on was called for.
func commitEscalation(tx *bolt.Tx, e *engine.Escalation, msgs []engine.Outbound, on func(engine.Escalation, []engine.Outbound) []engine.Timer) (bool, error) {
	if e == nil {
		return false, nil
	}
	eb := tx.Bucket(bEscalations)
	escID, _ := eb.NextSequence()
	e.ID = escID
	b, err := json.Marshal(e)
	if err != nil {
		return false, err
	}
	if err := eb.Put(u64(escID), b); err != nil {
		return false, err
	}
	if err := indexRecord(tx, e.Patient, byEscalation, u64(escID)); err != nil {
		return false, err
	}
	if on == nil {
		return false, nil
	}
	for _, t := range on(*e, msgs) {
		if err := setTimer(tx, EscalationOwner(escID), t); err != nil {
			return false, err
		}
	}
	return true, nil
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

// StaffStep is storage.StaffStep, what a staff command leaves behind.
type StaffStep = storage.StaffStep

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
// timers, read mark, visits, transcript (the chain from head, see
// headFor), escalations and their ladders, audit lines, queued messages
// and used invites. Dedupe keys hold no personal data and stay.
// Its cost is that of the patient's own records (prefix reads and the
// by_patient entries) plus a scan of the outbox, never of other patients'
// audit lines, escalations or invites.
func erase(tx *bolt.Tx, p engine.PatientID, head uint64) error {
	if err := eraseTranscript(tx, p, head); err != nil {
		return err
	}
	if err := tx.Bucket(bStates).Delete([]byte(p)); err != nil {
		return err
	}
	if err := bumpStates(tx); err != nil {
		return err
	}
	if err := unindexPatient(tx, p); err != nil {
		return err
	}
	if err := deleteTimers(tx, PatientOwner(p)); err != nil {
		return err
	}
	if err := tx.Bucket(bReadMarks).Delete([]byte(p)); err != nil {
		return err
	}
	pre := idxKey(p, "")
	for _, b := range [][]byte{bVisits, bQuarantine} {
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
