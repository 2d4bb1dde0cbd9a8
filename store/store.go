// Package store keeps Aftercare's durable data in one bbolt file:
// conversation states, the time-ordered schedule, the outbox of messages to
// send, escalations, visits, the audit trail and the keys of platform
// updates already applied.
//
// # Atomicity
//
// Apply commits one engine step in one transaction: the new state, the
// timer changes, the messages it caused, its escalation, its audit lines
// and the dedupe key of the update that caused it. A crash therefore either
// loses the whole step (the platform redelivers the update, or the timer is
// still due) or keeps all of it; a message is never applied twice.
//
// # Layout
//
//	meta        "schema" -> uint64 schema version (1)
//	states      patient -> engine.State (JSON)
//	timers      due(8, big-endian unix ns) | patient | 0x00 | key -> empty
//	timer_idx   patient | 0x00 | key -> due(8)
//	outbox      platform | 0x00 | priority(1) | seq(8) -> engine.Outbound (JSON)
//	escalations seq(8) -> engine.Escalation (JSON)
//	visits      patient | 0x00 | seq(8) -> engine.Visit (JSON)
//	audit       seq(8) -> engine.Audit (JSON)
//	dedupe      key -> unix ns(8) when applied
//	invites     token -> Invite (JSON): one-time enrollment links
//	read_marks  patient -> adapter's read mark (opaque): how far the
//	            patient's platform conversation was read (see SetReadMarks)
//	quarantine  patient | 0x00 | seq(8) -> Quarantined (JSON): records
//	            that could not be decoded, set aside (see Quarantined)
//	transcript  patient | 0x00 | seq(8) -> TranscriptLine (JSON): both
//	            sides of the conversation, for the staff desk
//	desk_logins sha256(token) -> DeskLogin (JSON): one-time sign-in links
//
// Timers sort by due time, so the next due timer is the first key and the
// due ones are a prefix: finding them costs O(log n + due), never a scan.
//
// # Concurrency
//
// A Store is safe for concurrent use. Apply and the outbox writes go
// through one committer goroutine that commits, in one transaction, every
// write queued while the previous commit ran (group commit: one pair of
// fsyncs for many steps, and no added delay when idle). Apply's fn may run
// more than once and must be a pure function of its arguments.
// Callers serialise Apply calls for one patient (the service does), since
// each step reads the state the previous one wrote.
package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"aftercare/engine"
)

// SchemaVersion is the layout version this code reads and writes.
const SchemaVersion = 1

// Errors returned by Open.
var (
	// ErrLocked means another process holds the database file.
	ErrLocked = errors.New("database is in use by another process")
	// ErrCorrupt means the file is not a readable Aftercare database.
	ErrCorrupt = errors.New("database file is corrupt or not an Aftercare database")
	// ErrSchema means the file was written by a newer Aftercare.
	ErrSchema = errors.New("database schema is newer than this program")
)

var (
	bMeta        = []byte("meta")
	bStates      = []byte("states")
	bTimers      = []byte("timers")
	bTimerIdx    = []byte("timer_idx")
	bOutbox      = []byte("outbox")
	bEscalations = []byte("escalations")
	bVisits      = []byte("visits")
	bAudit       = []byte("audit")
	bDedupe      = []byte("dedupe")
	bInvites     = []byte("invites")
	bReadMarks   = []byte("read_marks")
	allBuckets   = [][]byte{bMeta, bStates, bTimers, bTimerIdx, bOutbox, bEscalations, bVisits, bAudit, bDedupe, bInvites, bReadMarks, bQuarantine, bTranscript, bDeskLogins}
)

// Options tune Open.
type Options struct {
	// Timeout bounds the wait for the file lock (default 1 s), so a second
	// process fails fast with ErrLocked instead of hanging.
	Timeout time.Duration
	// MaxBatchSize caps how many writes share one commit (default 1000);
	// 1 gives every write a transaction and fsync of its own.
	MaxBatchSize int
	// CommitInterval is the least time between the starts of two commits
	// (default 2 ms, none with NoSync; negative: none; ignored with
	// MaxBatchSize 1). It keeps the fsync rate at most 1/CommitInterval
	// whatever the message rate, at the cost of at most that much latency;
	// under heavy load a commit takes longer than this and nothing waits.
	CommitInterval time.Duration
	// NoSync skips fsync. Only for tests and benchmarks of the engine.
	NoSync bool
}

// Store is an open database. Create it with Open; close it with Close.
type Store struct {
	db     *bolt.DB
	path   string
	commit *committer
	notice atomic.Pointer[QuarantineNotice]
}

// Open opens or creates the database at path (mode 0600).
func Open(path string, o Options) (st *Store, err error) {
	if o.Timeout == 0 {
		o.Timeout = time.Second
	}
	defer func() {
		// bbolt can panic on some corrupt files; a clear error is better.
		if r := recover(); r != nil {
			st, err = nil, fmt.Errorf("open %s: %w (%v)", path, ErrCorrupt, r)
		}
	}()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: o.Timeout, NoSync: o.NoSync})
	if err != nil {
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return nil, fmt.Errorf("open %s: %w (stop the other aftercare process, or use another data_dir)", path, ErrLocked)
		case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrInvalidMapping):
			return nil, fmt.Errorf("open %s: %w: %v (restore a backup, or move the file away to start afresh)", path, ErrCorrupt, err)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if o.MaxBatchSize <= 0 {
		o.MaxBatchSize = 1000
	}
	s := &Store{db: db, path: path}
	if err := s.init(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	switch {
	case o.MaxBatchSize == 1 || o.CommitInterval < 0:
		o.CommitInterval = 0 // nothing to group, or grouping by load only
	case o.CommitInterval == 0 && !o.NoSync:
		o.CommitInterval = 2 * time.Millisecond
	}
	s.commit = newCommitter(db, o.MaxBatchSize, o.CommitInterval)
	return s, nil
}

func (s *Store) init() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("%w: bucket %s: %v", ErrCorrupt, b, err)
			}
		}
		m := tx.Bucket(bMeta)
		v := m.Get([]byte("schema"))
		switch {
		case v == nil:
			return m.Put([]byte("schema"), u64(SchemaVersion))
		case len(v) != 8:
			return fmt.Errorf("%w: bad schema record", ErrCorrupt)
		case binary.BigEndian.Uint64(v) > SchemaVersion:
			return fmt.Errorf("%w: file has schema %d, this program reads %d (upgrade aftercare)", ErrSchema, binary.BigEndian.Uint64(v), SchemaVersion)
		}
		return nil
	})
}

// Close closes the database, waiting for transactions in progress.
func (s *Store) Close() error {
	s.commit.close()
	return s.db.Close()
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func timeKey(t time.Time) []byte {
	ns := t.UnixNano()
	if ns < 0 {
		ns = 0
	}
	return u64(uint64(ns))
}

func timerKey(due time.Time, p engine.PatientID, key string) []byte {
	b := make([]byte, 0, 8+len(p)+1+len(key))
	b = append(b, timeKey(due)...)
	b = append(b, p...)
	b = append(b, 0)
	return append(b, key...)
}

func idxKey(p engine.PatientID, key string) []byte {
	b := make([]byte, 0, len(p)+1+len(key))
	b = append(b, p...)
	b = append(b, 0)
	return append(b, key...)
}

func outboxPrefix(platform string) []byte { return append([]byte(platform), 0) }

// decodeOutbound decodes an outbox entry. The ID comes from the key: entries
// are encoded before the transaction that numbers them (see Prepared).
func decodeOutbound(k, v []byte) (engine.Outbound, error) {
	var m engine.Outbound
	if err := json.Unmarshal(v, &m); err != nil {
		return m, fmt.Errorf("%w: outbox entry: %v", ErrCorrupt, err)
	}
	if i := bytes.IndexByte(k, 0); i >= 0 && len(k) >= i+10 {
		m.ID = binary.BigEndian.Uint64(k[i+2 : i+10])
	}
	return m, nil
}

// outboxKey orders by platform, priority and sequence; the destination
// at the end lets the dispatcher skip held-back chats without decoding.
func outboxKey(m engine.Outbound) []byte {
	d := m.Destination()
	b := outboxPrefix(d.Platform())
	b = append(b, byte(m.Kind.Priority()))
	b = append(b, u64(m.ID)...)
	return append(b, d...)
}

// Due is a timer that is due or will be.
type Due struct {
	Patient engine.PatientID
	Key     string
	At      time.Time
}

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

// ErrSkip may be returned by an Apply fn to commit nothing.
var ErrSkip = errors.New("skip")

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

// LadderKey is the timer key an engine step's caller uses to start the
// escalation ladder of the step's escalation: the store files it under the
// escalation ("escalation:<id>", key "ladder:1").
const LadderKey = "escalation-ladder"

// EscalationPatient is the pseudo patient ID under which an escalation's
// ladder timers are kept.
func EscalationPatient(id uint64) engine.PatientID {
	return engine.PatientID("escalation:" + strconv.FormatUint(id, 10))
}

// commit writes one step; stateBytes and encoded, when set, are res.State
// and res.Messages already encoded.
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
	// An erasure with no state left (retention purge) writes none back.
	if !res.Erase || res.State.Patient != "" {
		b := stateBytes
		if b == nil || res.Erase {
			var err error
			if b, err = json.Marshal(res.State); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bStates).Put([]byte(st.Patient), b); err != nil {
			return err
		}
	}
	timers, idx := tx.Bucket(bTimers), tx.Bucket(bTimerIdx)
	if st.Due != nil {
		if err := timers.Delete(timerKey(st.Due.At, st.Patient, st.Due.Key)); err != nil {
			return err
		}
		ik := idxKey(st.Patient, st.Due.Key)
		if v := idx.Get(ik); v != nil && bytes.Equal(v, timeKey(st.Due.At)) {
			if err := idx.Delete(ik); err != nil {
				return err
			}
		}
	}
	var ladder *engine.Timer
	for _, t := range res.Timers {
		if t.Key == LadderKey {
			t := t
			ladder = &t
			continue
		}
		if err := setTimer(tx, st.Patient, t); err != nil {
			return err
		}
	}
	var escID uint64
	if e := res.Escalation; e != nil {
		eb := tx.Bucket(bEscalations)
		escID, _ = eb.NextSequence()
		e.ID = escID
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if err := eb.Put(u64(escID), b); err != nil {
			return err
		}
		if ladder != nil {
			if err := setTimer(tx, EscalationPatient(escID), engine.Timer{Key: "ladder:1", At: ladder.At}); err != nil {
				return err
			}
		}
	}
	if len(encoded) != len(res.Messages) {
		encoded = nil
	}
	for i, m := range res.Messages {
		if m.Kind == engine.KindAlert && m.EscalationID == 0 && escID != 0 {
			res.Messages[i].EscalationID = escID
			res.Messages[i].Choices = append(append([]engine.Choice(nil), m.Choices...), AckChoice(escID))
			if encoded != nil {
				// Changed here: encode it again (rare; red flags only).
				encoded = append([][]byte(nil), encoded...)
				encoded[i] = nil
			}
		}
	}
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
	if v := res.State.Visit; v != nil && hasAudit(res.Audit, "visit_recorded") {
		vb := tx.Bucket(bVisits)
		seq, _ := vb.NextSequence()
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if err := vb.Put(append(idxKey(st.Patient, ""), u64(seq)...), b); err != nil {
			return err
		}
	}
	if st.Dedupe != "" {
		if err := tx.Bucket(bDedupe).Put([]byte(st.Dedupe), timeKey(st.Now)); err != nil {
			return err
		}
	}
	if st.Invite != "" && res.InviteUsed {
		ib := tx.Bucket(bInvites)
		var inv engine.Invite
		if raw := ib.Get([]byte(st.Invite)); raw != nil && json.Unmarshal(raw, &inv) == nil {
			inv.UsedBy, inv.UsedAt = st.Patient, st.Now
			b, err := json.Marshal(inv)
			if err != nil {
				return err
			}
			if err := ib.Put([]byte(st.Invite), b); err != nil {
				return err
			}
		}
	}
	return nil
}

func resolveInvite(tx *bolt.Tx, token string, now time.Time) engine.InviteResult {
	raw := tx.Bucket(bInvites).Get([]byte(token))
	if raw == nil {
		return engine.InviteResult{Status: engine.InviteUnknown}
	}
	var inv engine.Invite
	if err := json.Unmarshal(raw, &inv); err != nil {
		return engine.InviteResult{Status: engine.InviteUnknown}
	}
	switch {
	case inv.UsedBy != "":
		return engine.InviteResult{Status: engine.InviteUsed}
	case !now.Before(inv.Expires):
		return engine.InviteResult{Status: engine.InviteExpired}
	}
	v := inv.Visit
	return engine.InviteResult{Status: engine.InviteOK, Visit: &v}
}

// PutInvite stores a new invite. Tokens are generated by the caller with at
// least 128 bits of randomness; an existing token is never overwritten.
func (s *Store) PutInvite(inv engine.Invite) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bInvites)
		if b.Get([]byte(inv.Token)) != nil {
			return errors.New("invite token collision")
		}
		v, err := json.Marshal(inv)
		if err != nil {
			return err
		}
		return b.Put([]byte(inv.Token), v)
	})
}

func hasAudit(as []engine.Audit, action string) bool {
	for _, a := range as {
		if a.Action == action {
			return true
		}
	}
	return false
}

// StateRaw returns a patient's stored state and a copy of its raw bytes
// (nil when not stored), for Step.Prepared.
func (s *Store) StateRaw(id engine.PatientID) (engine.State, []byte, error) {
	var st engine.State
	var raw []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bStates).Get([]byte(id))
		if v == nil {
			return nil
		}
		raw = bytes.Clone(v)
		return json.Unmarshal(v, &st)
	})
	return st, raw, err
}

// State returns a patient's stored state.
func (s *Store) State(id engine.PatientID) (engine.State, bool, error) {
	var st engine.State
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bStates).Get([]byte(id))
		if raw == nil {
			return nil
		}
		found = true
		return json.Unmarshal(raw, &st)
	})
	return st, found, err
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

// Outbox returns up to limit queued messages for one platform, highest
// priority first and in queue order within a priority.
func (s *Store) Outbox(platform string, limit int) ([]engine.Outbound, error) {
	return s.OutboxScan(platform, limit, math.MaxInt, nil)
}

// OutboxScan returns up to limit queued messages of one platform, in
// delivery order, leaving out those whose destination skip rejects. skip
// sees only the destination, read from the key, so held-back messages cost
// no decoding; at most maxKeys keys are looked at.
//
// An entry that cannot be decoded is left out and quarantined (see
// Quarantined), so it cannot hold up the messages queued behind it.
func (s *Store) OutboxScan(platform string, limit, maxKeys int, skip func(engine.PatientID) bool) ([]engine.Outbound, error) {
	var out []engine.Outbound
	var bad []badRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		out, bad = nil, nil
		c := tx.Bucket(bOutbox).Cursor()
		p := outboxPrefix(platform)
		n := 0
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p) && len(out) < limit && n < maxKeys; k, v = c.Next() {
			n++
			if len(k) > len(p)+9 && skip != nil && skip(engine.PatientID(k[len(p)+9:])) {
				continue
			}
			m, err := decodeOutbound(k, v)
			if err != nil {
				bad = append(bad, badRecord{key: bytes.Clone(k), patient: outboxDestination(platform, k), reason: err.Error()})
				continue
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, s.quarantineOutbox(bad)
}

// quarantineOutbox quarantines outbox entries a scan could not decode.
func (s *Store) quarantineOutbox(bad []badRecord) error {
	return s.quarantineFound(QuarantineOutbox, bOutbox, bad, func(v []byte) bool {
		var m engine.Outbound
		return json.Unmarshal(v, &m) != nil
	})
}

// OutboxDepth counts queued messages across platforms.
func (s *Store) OutboxDepth() (int, error) {
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bOutbox).Stats().KeyN
		return nil
	})
	return n, err
}

// Delivered removes sent messages from the outbox.
func (s *Store) Delivered(ms ...engine.Outbound) error {
	if len(ms) == 0 {
		return nil
	}
	// Not abandoned with a caller's context: the messages were sent, and
	// forgetting that would send them again.
	return s.commit.do(context.Background(), func(tx *bolt.Tx) error {
		b := tx.Bucket(bOutbox)
		for _, m := range ms {
			if err := b.Delete(outboxKey(m)); err != nil {
				return err
			}
		}
		return nil
	})
}

// Retry records a failed attempt and when to try again.
func (s *Store) Retry(m engine.Outbound) error {
	return s.commit.do(context.Background(), func(tx *bolt.Tx) error {
		b := tx.Bucket(bOutbox)
		k := outboxKey(m)
		if b.Get(k) == nil {
			return nil
		}
		v, err := encodeOutbound(m)
		if err != nil {
			return err
		}
		return b.Put(k, v)
	})
}

// Escalations returns the escalation records, oldest first.
func (s *Store) Escalations() ([]engine.Escalation, error) {
	return decodeAll[engine.Escalation](s, bEscalations)
}

// Audit returns the audit trail, oldest first.
func (s *Store) Audit() ([]engine.Audit, error) {
	return decodeAll[engine.Audit](s, bAudit)
}

// decodeAll decodes every value of a bucket, in key order.
func decodeAll[T any](s *Store, bucket []byte) ([]T, error) {
	var out []T
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			var x T
			if err := json.Unmarshal(v, &x); err != nil {
				return fmt.Errorf("%w: %s/%x: %v", ErrCorrupt, bucket, k, err)
			}
			out = append(out, x)
			return nil
		})
	})
	return out, err
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

// AppendAudit adds lines to the audit trail, for actions outside a patient
// step: reads of patient data (export, backup, a staff member viewing a
// timeline) must leave a trace of who read what. Lines name patients by ID
// and never carry patient text. While queued, the write gives up when ctx
// ends.
func (s *Store) AppendAudit(ctx context.Context, as ...engine.Audit) error {
	if len(as) == 0 {
		return nil
	}
	return s.commit.do(ctx, func(tx *bolt.Tx) error { return putAudit(tx, as) })
}

// Backup writes a consistent copy of the database to w while it is in use.
//
// w may be slow (a client reading over HTTP): a read transaction held
// while writing to it would stop every write once the file must grow, as
// bbolt cannot remap the file under an open reader. So Backup first copies
// the database to a temporary file beside it (mode 0600) within one read
// transaction that lasts only as long as a local disk copy, then streams
// that file to w and deletes it.
func (s *Store) Backup(w io.Writer) (int64, error) {
	f, err := os.CreateTemp(filepath.Dir(s.path), ".backup-*.tmp")
	if err != nil {
		return 0, fmt.Errorf("backup snapshot: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := s.db.View(func(tx *bolt.Tx) error {
		_, err := tx.WriteTo(f)
		return err
	}); err != nil {
		return 0, fmt.Errorf("backup snapshot: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("backup snapshot: %w", err)
	}
	return io.Copy(w, f)
}

// BackupFile writes a consistent copy of the database to path (mode 0600),
// copying within one read transaction: the destination is a file, not a
// client that may stall.
func (s *Store) BackupFile(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := s.db.View(func(tx *bolt.Tx) error { _, err := tx.WriteTo(f); return err }); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("backup: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("backup: %w", err)
	}
	return f.Close()
}

// OutboxAll returns up to limit queued messages of every platform, in key
// order (platform, priority, sequence).
// Entries that cannot be decoded are left out and quarantined.
func (s *Store) OutboxAll(limit int) ([]engine.Outbound, error) {
	var out []engine.Outbound
	var bad []badRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		out, bad = nil, nil
		c := tx.Bucket(bOutbox).Cursor()
		for k, v := c.First(); k != nil && len(out) < limit; k, v = c.Next() {
			m, err := decodeOutbound(k, v)
			if err != nil {
				platform, _, _ := bytes.Cut(k, []byte{0})
				bad = append(bad, badRecord{key: bytes.Clone(k), patient: outboxDestination(string(platform), k), reason: err.Error()})
				continue
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, s.quarantineOutbox(bad)
}

// Enqueue queues messages that belong to no patient step (answers to
// staff, operational notices).
func (s *Store) Enqueue(ms ...engine.Outbound) error {
	return s.commit.do(context.Background(), func(tx *bolt.Tx) error { return putOutbound(tx, ms, nil) })
}

// AckChoice is the button on a staff alert that acknowledges it.
func AckChoice(id uint64) engine.Choice {
	return engine.Choice{ID: "ack:" + strconv.FormatUint(id, 10), Label: "Acknowledge"}
}

// erase deletes everything stored about a patient inside tx: state,
// timers, read mark, visits, transcript, escalations and their ladders,
// audit lines, queued messages and used invites. Dedupe keys hold no personal data and stay.
func erase(tx *bolt.Tx, p engine.PatientID) error {
	if err := tx.Bucket(bStates).Delete([]byte(p)); err != nil {
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
	escs, err := matching(tx.Bucket(bEscalations), func(v []byte) bool {
		var e engine.Escalation
		return json.Unmarshal(v, &e) == nil && e.Patient == p
	})
	if err != nil {
		return err
	}
	for _, k := range escs {
		if err := deleteTimers(tx, EscalationPatient(binary.BigEndian.Uint64(k))); err != nil {
			return err
		}
	}
	for _, k := range escs {
		if err := tx.Bucket(bEscalations).Delete(k); err != nil {
			return err
		}
	}
	filters := map[string]func(v []byte) bool{
		string(bAudit): func(v []byte) bool {
			var a engine.Audit
			return json.Unmarshal(v, &a) == nil && a.Patient == p
		},
		string(bOutbox): func(v []byte) bool {
			var m engine.Outbound
			return json.Unmarshal(v, &m) == nil && (m.To == p || m.Patient == p)
		},
		string(bInvites): func(v []byte) bool {
			var inv engine.Invite
			return json.Unmarshal(v, &inv) == nil && inv.UsedBy == p
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

// EscalationUpdate is what an escalation step commits.
type EscalationUpdate struct {
	// Changed marks the record as modified (status, note).
	Changed bool
	// Messages are queued (staff channels already resolved).
	Messages []engine.Outbound
	// Timers are (re)scheduled on the escalation's ladder; zero At cancels.
	Timers []engine.Timer
	// StopLadder cancels every pending ladder step.
	StopLadder bool
	Audit      []engine.Audit
}

// ErrNotFound means the record does not exist (or was erased).
var ErrNotFound = errors.New("not found")

// ApplyEscalation loads escalation id, calls fn with it, and commits the
// update in one transaction. With due set, it is skipped (false) when that
// ladder timer is gone, so a ladder step is never applied twice.
func (s *Store) ApplyEscalation(ctx context.Context, id uint64, due *Due, now time.Time, fn func(e *engine.Escalation) (EscalationUpdate, error)) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	applied, quarantined := false, false
	p := EscalationPatient(id)
	err := s.db.Update(func(tx *bolt.Tx) error {
		applied, quarantined = false, false
		timers, idx := tx.Bucket(bTimers), tx.Bucket(bTimerIdx)
		if due != nil {
			k := timerKey(due.At, p, due.Key)
			if timers.Get(k) == nil {
				return nil
			}
			if err := timers.Delete(k); err != nil {
				return err
			}
			if err := idx.Delete(idxKey(p, due.Key)); err != nil {
				return err
			}
		}
		eb := tx.Bucket(bEscalations)
		raw := eb.Get(u64(id))
		if raw == nil {
			if due != nil {
				applied = true // the ladder of an erased escalation just ends
				return nil
			}
			return ErrNotFound
		}
		var e engine.Escalation
		if err := json.Unmarshal(raw, &e); err != nil {
			// Set it aside and end its ladder: a ladder step that fails
			// every time would hold up every timer due after it.
			q := Quarantined{Patient: p, Kind: QuarantineEscalation, Key: u64(id), Value: raw, At: now, Reason: err.Error()}
			if err := s.quarantine(tx, bEscalations, q); err != nil {
				return err
			}
			if err := deleteTimers(tx, p); err != nil {
				return err
			}
			applied = due != nil
			quarantined = true
			return nil
		}
		up, err := fn(&e)
		if err != nil {
			return err
		}
		if up.Changed {
			b, err := json.Marshal(e)
			if err != nil {
				return err
			}
			if err := eb.Put(u64(id), b); err != nil {
				return err
			}
		}
		if up.StopLadder {
			if err := deleteTimers(tx, p); err != nil {
				return err
			}
		}
		for _, t := range up.Timers {
			if err := setTimer(tx, p, t); err != nil {
				return err
			}
		}
		if err := putOutbound(tx, up.Messages, nil); err != nil {
			return err
		}
		if err := putAudit(tx, up.Audit); err != nil {
			return err
		}
		applied = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("escalation %d: %w", id, err)
	}
	if quarantined && due == nil {
		return false, fmt.Errorf("escalation %d: %w (its record could not be read and was quarantined)", id, ErrNotFound)
	}
	return applied, nil
}

// putOutbound queues ms, numbering each in queue order. encoded, when not
// nil, holds ms already encoded (with no ID: the key carries it); a nil
// element is encoded here.
func putOutbound(tx *bolt.Tx, ms []engine.Outbound, encoded [][]byte) error {
	ob := tx.Bucket(bOutbox)
	for i, m := range ms {
		var b []byte
		if i < len(encoded) {
			b = encoded[i]
		}
		if b == nil {
			var err error
			if b, err = encodeOutbound(m); err != nil {
				return err
			}
		}
		m.ID, _ = ob.NextSequence()
		if err := ob.Put(outboxKey(m), b); err != nil {
			return err
		}
	}
	return nil
}

// EncodeMessages encodes a step's messages for Prepared.Messages, so the
// work is done before the write transaction instead of inside it.
func EncodeMessages(ms []engine.Outbound) ([][]byte, error) {
	out := make([][]byte, len(ms))
	for i, m := range ms {
		b, err := encodeOutbound(m)
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

// encodeOutbound is the one encoding of an outbox entry, the inverse of
// decodeOutbound: without the ID, which the key carries.
func encodeOutbound(m engine.Outbound) ([]byte, error) {
	m.ID = 0
	return json.Marshal(m)
}

func putAudit(tx *bolt.Tx, as []engine.Audit) error {
	ab := tx.Bucket(bAudit)
	for _, a := range as {
		seq, _ := ab.NextSequence()
		b, err := json.Marshal(a)
		if err != nil {
			return err
		}
		if err := ab.Put(u64(seq), b); err != nil {
			return err
		}
	}
	return nil
}

// Escalation returns one escalation record.
func (s *Store) Escalation(id uint64) (engine.Escalation, error) {
	var e engine.Escalation
	err := s.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bEscalations).Get(u64(id))
		if raw == nil {
			return ErrNotFound
		}
		return json.Unmarshal(raw, &e)
	})
	return e, err
}

// Patients calls fn with every stored patient state, in ID order. fn must
// not call back into the store. Escalation ladders are not patients and
// are not listed.
//
// A state that cannot be decoded is passed over and quarantined (the
// patient continues from a fresh state at their next step).
func (s *Store) Patients(fn func(engine.State) error) error {
	var bad []badRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bStates).ForEach(func(k, v []byte) error {
			if strings.HasPrefix(string(k), "escalation:") {
				return nil
			}
			var st engine.State
			if err := json.Unmarshal(v, &st); err != nil {
				bad = append(bad, badRecord{key: bytes.Clone(k), patient: engine.PatientID(k), reason: err.Error()})
				return nil
			}
			return fn(st)
		})
	})
	if err != nil {
		return err
	}
	return s.quarantineFound(QuarantineState, bStates, bad, func(v []byte) bool {
		var st engine.State
		return json.Unmarshal(v, &st) != nil
	})
}

// PatientIDs returns the IDs of the stored patients on platform, in ID
// order, without decoding their states (so one unreadable state does not
// hide the others). Escalation ladders are not patients and are not listed.
func (s *Store) PatientIDs(platform string) ([]engine.PatientID, error) {
	var out []engine.PatientID
	pre := []byte(platform + ":")
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bStates).Cursor()
		for k, _ := c.Seek(pre); k != nil && bytes.HasPrefix(k, pre); k, _ = c.Next() {
			out = append(out, engine.PatientID(k))
		}
		return nil
	})
	return out, err
}

// ReadMarks returns the read marks of platform's patients (see
// SetReadMarks), keyed by patient.
func (s *Store) ReadMarks(platform string) (map[engine.PatientID]string, error) {
	out := make(map[engine.PatientID]string)
	pre := []byte(platform + ":")
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bReadMarks).Cursor()
		for k, v := c.Seek(pre); k != nil && bytes.HasPrefix(k, pre); k, v = c.Next() {
			out[engine.PatientID(k)] = string(v)
		}
		return nil
	})
	return out, err
}

// SetReadMarks stores, in one transaction, how far each patient's platform
// conversation was read. A mark is the adapter's own string (for Discord
// the DM channel and the newest message committed from it); the store keeps
// it without interpreting it, so a platform that loses messages while the
// bot is down can read them back from where it stopped. Marks of patients
// without a stored state are not kept: an erased patient stays erased.
func (s *Store) SetReadMarks(marks map[engine.PatientID]string) error {
	if len(marks) == 0 {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		states, b := tx.Bucket(bStates), tx.Bucket(bReadMarks)
		for p, m := range marks {
			if states.Get([]byte(p)) == nil {
				continue
			}
			if err := b.Put([]byte(p), []byte(m)); err != nil {
				return err
			}
		}
		return nil
	})
}

// Record is everything stored about one patient, for export.
type Record struct {
	State       engine.State        `json:"state"`
	Visits      []engine.Visit      `json:"visits"`
	Escalations []engine.Escalation `json:"escalations"`
	Audit       []engine.Audit      `json:"audit"`
	// Transcript is the conversation, both sides, oldest first.
	Transcript []TranscriptLine `json:"transcript,omitempty"`
}

// PatientRecord collects everything stored about a patient.
func (s *Store) PatientRecord(p engine.PatientID) (Record, error) {
	var r Record
	err := s.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bStates).Get([]byte(p))
		if raw == nil {
			return ErrNotFound
		}
		if err := json.Unmarshal(raw, &r.State); err != nil {
			return err
		}
		c := tx.Bucket(bVisits).Cursor()
		pre := idxKey(p, "")
		for k, v := c.Seek(pre); k != nil && bytes.HasPrefix(k, pre); k, v = c.Next() {
			var vi engine.Visit
			if err := json.Unmarshal(v, &vi); err != nil {
				return err
			}
			r.Visits = append(r.Visits, vi)
		}
		r.Transcript = readTranscript(tx, p, 0)
		if err := tx.Bucket(bEscalations).ForEach(func(_, v []byte) error {
			var e engine.Escalation
			if json.Unmarshal(v, &e) == nil && e.Patient == p {
				r.Escalations = append(r.Escalations, e)
			}
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bAudit).ForEach(func(_, v []byte) error {
			var a engine.Audit
			if json.Unmarshal(v, &a) == nil && a.Patient == p {
				r.Audit = append(r.Audit, a)
			}
			return nil
		})
	})
	return r, err
}

// Report is the result of Check.
type Report struct {
	Path     string
	Schema   uint64
	Counts   map[string]int
	Problems []string
	// Quarantined lists the records set aside because they could not be
	// decoded (kept, not problems of the file: the bot runs on without them).
	Quarantined []Quarantined
}

// OK reports whether no problem was found.
func (r Report) OK() bool { return len(r.Problems) == 0 }

// String formats the report for people.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "database %s (schema %d)\n", r.Path, r.Schema)
	for _, name := range allBuckets {
		fmt.Fprintf(&b, "  %-12s %d entries\n", name, r.Counts[string(name)])
	}
	if r.OK() {
		b.WriteString("no problems found\n")
	}
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "PROBLEM: %s\n", p)
	}
	if len(r.Quarantined) > 0 {
		fmt.Fprintf(&b, "%d record(s) in quarantine (unreadable, set aside with their bytes; see the audit trail):\n", len(r.Quarantined))
	}
	for _, q := range r.Quarantined {
		fmt.Fprintf(&b, "QUARANTINED: %s\n", q)
	}
	return b.String()
}

// Check opens path read-only and verifies page integrity (bbolt's own
// check), the schema, that every record decodes, and that the timer index
// and the timers agree.
func Check(path string) (Report, error) {
	r := Report{Path: path, Counts: map[string]int{}}
	if _, err := os.Stat(path); err != nil {
		return r, fmt.Errorf("check: %w", err)
	}
	st, err := Open(path, Options{Timeout: time.Second})
	if err != nil {
		return r, fmt.Errorf("check: %w", err)
	}
	defer st.Close()
	err = st.db.View(func(tx *bolt.Tx) error {
		for e := range tx.Check() {
			r.Problems = append(r.Problems, e.Error())
		}
		if v := tx.Bucket(bMeta).Get([]byte("schema")); len(v) == 8 {
			r.Schema = binary.BigEndian.Uint64(v)
		}
		decoders := map[string]func([]byte) error{
			string(bStates):      func(v []byte) error { var x engine.State; return json.Unmarshal(v, &x) },
			string(bOutbox):      func(v []byte) error { var x engine.Outbound; return json.Unmarshal(v, &x) },
			string(bEscalations): func(v []byte) error { var x engine.Escalation; return json.Unmarshal(v, &x) },
			string(bAudit):       func(v []byte) error { var x engine.Audit; return json.Unmarshal(v, &x) },
			string(bInvites):     func(v []byte) error { var x engine.Invite; return json.Unmarshal(v, &x) },
		}
		for _, name := range allBuckets {
			dec := decoders[string(name)]
			tx.Bucket(name).ForEach(func(k, v []byte) error {
				r.Counts[string(name)]++
				if dec != nil {
					if err := dec(v); err != nil && len(r.Problems) < 100 {
						r.Problems = append(r.Problems, fmt.Sprintf("%s/%q: %v", name, k, err))
					}
				}
				return nil
			})
		}
		if q, err := listQuarantine(tx); err != nil {
			r.Problems = append(r.Problems, err.Error())
		} else {
			r.Quarantined = q
		}
		timers := tx.Bucket(bTimers)
		return tx.Bucket(bTimerIdx).ForEach(func(k, v []byte) error {
			if timers.Get(append(bytes.Clone(v), k...)) == nil && len(r.Problems) < 100 {
				r.Problems = append(r.Problems, fmt.Sprintf("timer index %q points at a missing timer", k))
			}
			return nil
		})
	})
	return r, err
}
