package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store/handoff"
	"github.com/aftercare-clinic/aftercare/store/storage"
)

// lockPatient locks p's row, creating it (with no state) when missing,
// and returns the stored state bytes (nil when none). A row created here
// that the step does not fill is rolled back with the step.
func lockPatient(ctx context.Context, tx pgx.Tx, p engine.PatientID) ([]byte, error) {
	for range 10 {
		var raw []byte
		err := tx.QueryRow(ctx, `SELECT state FROM patients WHERE id = $1 FOR UPDATE`, string(p)).Scan(&raw)
		if err == nil {
			return raw, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return nil, err
		}
		// Missing: create it. A concurrent creator makes this wait for its
		// outcome; a concurrent erasure makes the next SELECT miss again.
		if _, err := tx.Exec(ctx, `INSERT INTO patients (id) VALUES ($1) ON CONFLICT (id) DO NOTHING`, string(p)); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("patient %s: row lock not obtained (created and erased concurrently ten times)", p)
}

// Apply loads the patient's state under its row lock, calls fn with it,
// and commits fn's result in one transaction. It reports whether anything
// was committed: false when the dedupe key was already applied, the timer
// was already fired, or fn returned storage.ErrSkip. Apply returns only
// once the step is committed (or failed).
//
// Concurrent Apply calls of different patients share a transaction (group
// commit, see committer and applyGroup), so fn may run more than once, as
// with the bbolt store: when another step of its group fails, the group is
// rolled back and run again without it. A step's own failure (fn's error
// or panic, a write the server refuses) is its own: the others commit.
func (s *Store) Apply(ctx context.Context, st storage.Step, fn func(storage.Input) (engine.Result, error)) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if st.Due != nil && st.Due.Owner != storage.PatientOwner(st.Patient) {
		return false, fmt.Errorf("apply %s: timer %s of %s: %w", st.Patient, st.Due.Key, st.Due.Owner, storage.ErrOwner)
	}
	a := &apply{st: st, fn: fn, t: handoff.NewTicket()}
	if err := s.group.do(ctx, a); err != nil {
		return false, fmt.Errorf("apply %s: %w", st.Patient, err)
	}
	return a.applied, nil
}

// errLockRace means a patient row created for a group was erased before
// the group could lock it; the group is run again.
var errLockRace = errors.New("patient row erased while being locked")

// applyGroup runs the steps of g, each of a different patient, in one
// transaction and commits it, setting each step's applied.
//
// Lock order, the same in every transaction, so that groups of two
// instances cannot deadlock: first the group's patient rows, created where
// missing and then locked, both in ID order; then the invite of the
// group's one invite step, if any; then only rows belonging to those
// patients (their timers, escalations, messages). The reads that come
// with the locks (states, dedupe keys, the timers being fired) go out as
// one pipelined batch, and every step's writes as a second.
//
// An error wrapping *stepError is one step's own (its reads or fn);
// *commitError a COMMIT without an answer; *groupError no connection; any
// other error the group's (its writes are one statement per table, so a
// bad row is not one step's: the committer halves the group to find it).
func (s *Store) applyGroup(ctx context.Context, g []*apply) error {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return &groupError{err}
	}
	// BEGIN goes out with the reads and COMMIT with the writes, so a
	// group costs two round trips (pgx.Tx would add one for each): on a
	// busy machine each round trip waits for the server to be scheduled.
	tx := pc.Conn()
	defer func() {
		if c := tx.PgConn(); !c.IsClosed() && c.TxStatus() != 'I' {
			// Failed midway: end the transaction, or the pool closes the
			// connection when it comes back.
			rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			tx.Exec(rctx, `ROLLBACK`)
			cancel()
		}
		pc.Release()
	}()
	ids := make([]string, len(g))
	var keys, owners, tkeys []string
	var dues []int64
	for i, a := range g {
		ids[i] = string(a.st.Patient)
		if a.st.Dedupe != "" {
			keys = append(keys, a.st.Dedupe)
		}
		if d := a.st.Due; d != nil {
			owners, tkeys, dues = append(owners, string(a.st.Patient)), append(tkeys, d.Key), append(dues, ns(d.At))
		}
	}
	slices.Sort(ids) // bytewise, as COLLATE "C" sorts
	b := &pgx.Batch{}
	b.Queue(`BEGIN`)
	b.Queue(`INSERT INTO patients (id)
		SELECT id FROM unnest($1::text[]) AS id ORDER BY id COLLATE "C"
		ON CONFLICT (id) DO NOTHING RETURNING id`, ids)
	b.Queue(`SELECT id, state FROM patients WHERE id = ANY($1) ORDER BY id FOR UPDATE`, ids)
	b.Queue(`SELECT key FROM dedupe WHERE key = ANY($1)`, keys)
	b.Queue(`SELECT t.owner, t.key, t.due_ns FROM timers t
		JOIN unnest($1::text[], $2::text[], $3::bigint[]) AS d (owner, key, due_ns)
			ON t.owner = d.owner AND t.key = d.key AND t.due_ns = d.due_ns
		WHERE t.owner_kind = 'patient'
		FOR UPDATE OF t SKIP LOCKED`, owners, tkeys, dues)
	created := map[engine.PatientID]bool{}
	states := make(map[engine.PatientID][]byte, len(g))
	applied := map[string]bool{}
	live := map[timerRef]bool{}
	if err := readGroup(tx.SendBatch(ctx, b), created, states, applied, live); err != nil {
		return err
	}
	if len(states) != len(g) {
		return errLockRace
	}
	w := &rows{}
	var unfilled []string // rows created here whose step stored no state
	for i, a := range g {
		ok, err := s.groupStep(ctx, tx, w, a, states[a.st.Patient], applied, live)
		if err != nil {
			return &stepError{i, err}
		}
		a.applied = ok
		if created[a.st.Patient] && !ok {
			unfilled = append(unfilled, string(a.st.Patient))
		}
	}
	if len(unfilled) > 0 {
		w.exec(`DELETE FROM patients WHERE id = ANY($1) AND state IS NULL`, unfilled)
	}
	b = w.batch()
	b.Queue(`COMMIT`)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			return err // refused by the server: nothing committed
		}
		return &commitError{err}
	}
	return nil
}

// timerRef names one patient timer at one due time.
type timerRef struct {
	owner, key string
	due        int64
}

// readGroup reads the results of applyGroup's first batch: the patient
// rows created, the states locked, the dedupe keys already applied and
// the timers still due.
func readGroup(br pgx.BatchResults, created map[engine.PatientID]bool, states map[engine.PatientID][]byte, applied map[string]bool, live map[timerRef]bool) error {
	defer br.Close()
	if _, err := br.Exec(); err != nil { // BEGIN
		return &groupError{err}
	}
	var id, key string
	var raw []byte
	rows, _ := br.Query()
	if _, err := pgx.ForEachRow(rows, []any{&id}, func() error {
		created[engine.PatientID(id)] = true
		return nil
	}); err != nil {
		return err
	}
	rows, _ = br.Query()
	if _, err := pgx.ForEachRow(rows, []any{&id, &raw}, func() error {
		states[engine.PatientID(id)] = bytes.Clone(raw) // nil stays nil: no state yet
		return nil
	}); err != nil {
		return err
	}
	rows, _ = br.Query()
	if _, err := pgx.ForEachRow(rows, []any{&key}, func() error {
		applied[key] = true
		return nil
	}); err != nil {
		return err
	}
	var t timerRef
	rows, _ = br.Query()
	if _, err := pgx.ForEachRow(rows, []any{&t.owner, &t.key, &t.due}, func() error {
		live[t] = true
		return nil
	}); err != nil {
		return err
	}
	return br.Close()
}

// groupStep applies one step of a group on its patient's locked state
// raw: it decides whether the step is skipped, runs fn when the prepared
// result is stale (or missing), and adds the step's rows to w. It
// reports whether the step commits anything.
func (s *Store) groupStep(ctx context.Context, tx dbtx, w *rows, a *apply, raw []byte, applied map[string]bool, live map[timerRef]bool) (bool, error) {
	st := a.st
	if st.Dedupe != "" && applied[st.Dedupe] {
		return false, nil
	}
	if d := st.Due; d != nil && !live[timerRef{string(st.Patient), d.Key, ns(d.At)}] {
		return false, nil // fired already (or being fired under a claim)
	}
	if pr := st.Prepared; pr != nil && st.Invite == "" && (raw == nil) == (pr.From == nil) && bytes.Equal(raw, pr.From) {
		return true, s.commit(ctx, tx, w, st, pr.Result, pr.State, pr.Messages)
	}
	var state engine.State
	found := raw != nil
	if found {
		if err := json.Unmarshal(raw, &state); err != nil {
			// Set the unreadable state aside and go on from a fresh
			// one: the message is still triaged, a red flag escalates.
			if _, err := tx.Exec(ctx, `UPDATE patients SET state = NULL WHERE id = $1`, string(st.Patient)); err != nil {
				return false, err
			}
			q := storage.Quarantined{Patient: st.Patient, Kind: storage.QuarantineState, Key: []byte(st.Patient), Value: raw, At: st.Now, Reason: err.Error()}
			if err := s.quarantine(ctx, tx, q); err != nil {
				return false, err
			}
			state, found = engine.State{}, false
		}
	}
	in := storage.Input{State: state, Found: found}
	if st.Invite != "" {
		var err error
		if in.Invite, err = resolveInvite(ctx, tx, st.Invite, st.Now); err != nil {
			return false, err
		}
	}
	res, err := call(a.fn, in)
	if errors.Is(err, storage.ErrSkip) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, s.commit(ctx, tx, w, st, res, nil, nil)
}

// commit writes one step; stateBytes and encoded, when set, are res.State
// and res.Messages already encoded. Each table's part is a helper below,
// called in the bbolt store's order: erasure, state, fired timer, timers,
// escalation (and what st.OnEscalation adds to it), messages, audit,
// transcript, visit, dedupe key, invite. The writes are queued on w, which
// the group sends as one pipelined batch after its last step (see queue);
// only the reads (an escalation's number, an invite) and the rare erasure
// run at once, in tx.
func (s *Store) commit(ctx context.Context, tx dbtx, w *rows, st storage.Step, res engine.Result, stateBytes []byte, encoded [][]byte) error {
	// Work on copies: the caller's result (a cached Prepared) stays as is.
	res.Messages = append([]engine.Outbound(nil), res.Messages...)
	res.Audit = append([]engine.Audit(nil), res.Audit...)
	if res.Escalation != nil {
		e := *res.Escalation
		res.Escalation = &e
	}
	if res.Erase {
		if err := erase(ctx, tx, st.Patient); err != nil {
			return err
		}
		res.Audit = append(res.Audit, engine.Audit{At: st.Now, Actor: "system", Action: "erased", Detail: "all data of one patient erased"})
	}
	if err := commitState(w, st, res, stateBytes); err != nil {
		return err
	}
	commitTimers(w, st, res.Timers)
	escalated, err := commitEscalation(ctx, tx, w, res.Escalation, res.Messages, st.OnEscalation)
	if err != nil {
		return err
	}
	if escalated {
		encoded = nil // the caller may have changed the messages
	}
	if err := putOutbound(w, res.Messages, encoded); err != nil {
		return err
	}
	if err := putAudit(w, res.Audit); err != nil {
		return err
	}
	if !res.Erase {
		if err := putTranscript(w, st, res.Messages); err != nil {
			return err
		}
	}
	if err := commitVisit(w, st.Patient, res); err != nil {
		return err
	}
	if st.Dedupe != "" {
		w.dedupeKey(st.Dedupe, ns(st.Now))
	}
	if st.Invite != "" && res.InviteUsed {
		if err := useInvite(ctx, tx, w, st); err != nil {
			return err
		}
	}
	return nil
}

// commitState writes the step's new state (patients), with the columns
// the last-activity and visit-date indexes are on (migration 0006);
// stateBytes, when set, is res.State already encoded. An erasure with no
// state left (retention purge) writes none back.
func commitState(w *rows, st storage.Step, res engine.Result, stateBytes []byte) error {
	if res.Erase && res.State.Patient == "" {
		return nil
	}
	b := stateBytes
	if b == nil || res.Erase {
		var err error
		if b, err = json.Marshal(res.State); err != nil {
			return err
		}
	}
	var visit *int64
	if v := res.State.Visit; v != nil {
		visit = nsPtr(v.At)
	}
	w.patient(string(st.Patient), b, nsPtr(res.State.LastActive), visit)
	return nil
}

// commitVisit records the patient's visit when the step recorded one.
func commitVisit(w *rows, p engine.PatientID, res engine.Result) error {
	v := res.State.Visit
	if v == nil || !res.VisitRecorded {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.visit(string(p), ns(v.At), b)
	return nil
}

// putTranscript appends what the patient said (st.Heard) and what the step
// sends them to the conversation transcript the staff desk shows.
func putTranscript(w *rows, st storage.Step, ms []engine.Outbound) error {
	var lines []storage.TranscriptLine
	if st.Heard != nil {
		lines = append(lines, *st.Heard)
	}
	for _, m := range ms {
		if m.To == st.Patient && m.Channel == "" {
			lines = append(lines, storage.SentLine(m))
		}
	}
	for _, l := range lines {
		b, err := json.Marshal(l)
		if err != nil {
			return err
		}
		w.transcriptLine(string(st.Patient), b)
	}
	return nil
}
