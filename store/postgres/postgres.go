// Package postgres keeps Aftercare's durable data in PostgreSQL, for
// deployments that outgrow one process and one bbolt file. It implements
// the store the service consumes (service.Store) with the guarantees the
// bbolt store gives, and adds what several instances on one database need.
//
// # Guarantees
//
//   - One transaction per step: Apply commits the state, timer changes,
//     queued messages, escalation, audit lines, dedupe key and invite use of
//     one engine step together, or nothing.
//   - Group commit: concurrent Apply calls of different patients share
//     one transaction (up to Options.GroupSize steps; see committer), and
//     each returns once its group is committed, so every step is durable
//     before its reply is sent. A step whose fn fails is taken out and run
//     alone, and a group whose rows the server refuses is halved until the
//     step at fault is alone: the rest commit without it.
//   - A patient's steps apply in order even when two instances receive
//     them: a group locks its patients' rows (SELECT ... FOR UPDATE) before
//     it reads their states, dedupe keys or timers, always in patient ID
//     order, so two instances' groups cannot deadlock (a deadlock the
//     server reports all the same, say with an erasure racing a ladder
//     step, runs the group again). Within one Store, two steps of one
//     patient never share a group or run in two at once: the later waits
//     for the earlier's group.
//   - Timers fire once: DueBefore claims the due timers it returns (FOR
//     UPDATE SKIP LOCKED, then a lease), so instances share the due timers
//     instead of racing for them; firing deletes the timer in the step's
//     transaction, under the patient's (or escalation's) row lock, so a
//     timer claimed twice (a lease ran out) is still applied once.
//   - Outbox entries are claimed with a lease (claimed_by, lease_until):
//     an instance sends only what it claimed, and the claims of an instance
//     killed mid-send pass to another when the lease runs out, so a kill
//     costs at most the lease in delay and at most one duplicate per
//     message in flight. A destination's messages are claimed by one
//     instance at a time, which keeps a chat's messages in order.
//
// # Times
//
// Timer due times, dedupe stamps and visit dates are the service clock's
// (a fake clock in tests) and are stored as unix nanoseconds, like bbolt's
// keys. Leases are the database server's own time (now()), since they are
// about instances being alive, not about the schedule.
//
// # Concurrency
//
// A Store is safe for concurrent use, and any number of Stores (in one
// process or many) may share one database.
package postgres

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store/storage"
)

// DSNEnv is the environment variable that holds the connection string (a
// secret: it may carry a password, so it is never a config file setting).
const DSNEnv = "AFTERCARE_POSTGRES_DSN"

// ErrUnreachable means the server named by DSNEnv could not be reached.
var ErrUnreachable = errors.New("PostgreSQL server unreachable")

// Options tune Open.
type Options struct {
	// DSN is the connection string (from DSNEnv), either a URL
	// (postgres://user@host/db) or key=value pairs (host=/run/postgresql).
	DSN string
	// Instance names this process in claims; default a random ID. Two
	// live Stores must never share one.
	Instance string
	// Lease is how long a claim on a timer or outbox entry lasts before
	// another instance may take it (default 30 s). A step or send must
	// finish well within it.
	Lease time.Duration
	// ConnectTimeout bounds the first connection (default 10 s), so a
	// wrong host fails start-up quickly with a clear error.
	ConnectTimeout time.Duration
	// Schema, when set, keeps every table of this store in that schema:
	// it is created and migrated on open, and every connection of the
	// store's pool has it as its only search_path, so the store's SQL is
	// the same for every schema and cannot reach another one's tables. A
	// deployment of several clinics opens one store per clinic this way
	// ("clinic_riverside"); empty is the server's default (public).
	Schema string
	// MaxConns caps the store's pool (default pgx's, the larger of 4 and
	// the CPUs). Connections open as needed and close after a minute
	// idle when it is set, so many small per-clinic pools hold few.
	MaxConns int32
	// GroupSize is the most Apply steps one transaction holds (default
	// DefaultGroupSize); 1 commits each step alone.
	GroupSize int
	// GroupWait is how long steps arriving while a group commits wait
	// for it before a second group starts beside it (default
	// DefaultGroupWait; negative: no wait). A group takes every step that
	// waits, so groups grow with the load; an idle store adds no delay.
	GroupWait time.Duration
	// Committers is how many groups may commit at once, each on its own
	// connection (default DefaultCommitters). The pool is made larger than
	// this unless the DSN sets pool_max_conns.
	Committers int
}

// schemaName is what Options.Schema may be: a lowercase identifier that
// needs no quoting.
var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// ErrClosed is returned by Apply once Close has begun.
var ErrClosed = errors.New("postgres store is closed")

// Store is an open PostgreSQL store. Create it with Open; close it with Close.
type Store struct {
	pool     *pgxpool.Pool
	instance string
	leaseMS  int64
	notice   atomic.Pointer[storage.QuarantineNotice]
	group    *committer
}

// Open connects, migrates the schema and returns the store. Errors name
// DSNEnv when the server cannot be reached, and wrap ErrSchema when the
// database was migrated by a newer program.
func Open(ctx context.Context, o Options) (*Store, error) {
	if strings.TrimSpace(o.DSN) == "" {
		return nil, fmt.Errorf("postgres store: %s is not set: set it to the server's connection string, e.g. postgres://aftercare@db.internal/aftercare", DSNEnv)
	}
	if o.Lease <= 0 {
		o.Lease = 30 * time.Second
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	if o.GroupSize <= 0 {
		o.GroupSize = DefaultGroupSize
	}
	if o.GroupWait == 0 {
		o.GroupWait = DefaultGroupWait
	}
	if o.Committers <= 0 {
		o.Committers = DefaultCommitters
	}
	if o.Instance == "" {
		var b [8]byte
		rand.Read(b[:])
		o.Instance = hex.EncodeToString(b[:])
	}
	cfg, err := pgxpool.ParseConfig(o.DSN)
	if err != nil {
		// pgx leaves the password out of its parse errors.
		return nil, fmt.Errorf("postgres store: %s is not a valid connection string: %w", DSNEnv, err)
	}
	// The committers hold a connection each while committing; leave room
	// for the scheduler, the dispatchers and the desk.
	if need := int32(o.Committers + 4); cfg.MaxConns < need && !strings.Contains(o.DSN, "pool_max_conns") {
		cfg.MaxConns = need
	}
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > o.ConnectTimeout {
		cfg.ConnConfig.ConnectTimeout = o.ConnectTimeout
	}
	if o.Schema != "" {
		if !schemaName.MatchString(o.Schema) {
			return nil, fmt.Errorf("postgres store: schema %q: use lowercase letters, digits and _", o.Schema)
		}
		cfg.ConnConfig.RuntimeParams["search_path"] = o.Schema
	}
	if o.MaxConns > 0 {
		cfg.MaxConns = o.MaxConns
		cfg.MinConns = 0
		cfg.MaxConnIdleTime = time.Minute
		// A small pool (one clinic of many) keeps half its connections
		// free of committers, so the dispatchers' claims and the desk's
		// reads never wait for every group in flight.
		if limit := max(1, int(o.MaxConns)/2); o.Committers > limit {
			o.Committers = limit
		}
	}
	cctx, cancel := context.WithTimeout(ctx, o.ConnectTimeout)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(cctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres store: %w: check %s (%w)", ErrUnreachable, DSNEnv, err)
	}
	if err := pool.Ping(cctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres store: %w: cannot connect to the server named by %s: %w", ErrUnreachable, DSNEnv, err)
	}
	if err := migrate(cctx, pool, o.Schema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	s := &Store{pool: pool, instance: o.Instance, leaseMS: o.Lease.Milliseconds()}
	s.group = newCommitter(s, o.GroupSize, o.GroupWait, o.Committers, o.Lease)
	return s, nil
}

// Close commits the steps already queued (Apply calls after it begins
// return ErrClosed), gives up this instance's claims, so another instance
// may take them at once, and closes the connections.
func (s *Store) Close() error {
	s.group.close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.pool.Exec(ctx, `UPDATE timers SET claimed_by = NULL, lease_until = NULL WHERE claimed_by = $1`, s.instance)
	s.pool.Exec(ctx, `UPDATE outbox SET claimed_by = NULL, lease_until = NULL WHERE claimed_by = $1`, s.instance)
	s.pool.Close()
	return nil
}

// Instance returns the name this store claims work under.
func (s *Store) Instance() string { return s.instance }

// SetQuarantineNotice sets who is told when a record is quarantined (see
// storage.QuarantineNotice). Safe for concurrent use.
func (s *Store) SetQuarantineNotice(f storage.QuarantineNotice) { s.notice.Store(&f) }

// dbtx is what the statements of a transaction run on: a pgx.Tx, or the
// connection of a group, which sends its own BEGIN and COMMIT.
type dbtx interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// errSkip rolls a transaction back that committed nothing on purpose.
var errSkip = errors.New("skip")

// tx runs fn in a transaction; fn returning errSkip rolls back and reports
// false, nil.
func (s *Store) tx(ctx context.Context, fn func(pgx.Tx) error) (bool, error) {
	err := pgx.BeginFunc(ctx, s.pool, fn)
	if errors.Is(err, errSkip) {
		return false, nil
	}
	return err == nil, err
}

func ns(t time.Time) int64 {
	n := t.UnixNano()
	if n < 0 {
		return 0
	}
	return n
}

// nsOrNil is ns for optional times: the zero time is NULL.
func nsOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return ns(t)
}

// nsPtr is ns for optional times in column arrays: the zero time is nil
// (NULL).
func nsPtr(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	n := ns(t)
	return &n
}

func fromNS(n int64) time.Time { return time.Unix(0, n).UTC() }

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
	a := &apply{st: st, fn: fn, done: make(chan error, 1)}
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

// commitTimers removes the timer the step fired, if any, and applies the
// step's changes to the patient's timers.
func commitTimers(w *rows, st storage.Step, ts []engine.Timer) {
	if d := st.Due; d != nil {
		w.timer(timerID{"patient", string(st.Patient), d.Key}, ns(d.At), true)
	}
	for _, t := range ts {
		setTimer(w, storage.PatientOwner(st.Patient), t)
	}
}

// commitEscalation stores the step's escalation, if any, under a new ID
// (read from tx at once; the rows go to w), then lets on
// (Step.OnEscalation) complete msgs and schedules the escalation timers it
// returns: what goes with an escalation (its alerts' buttons, its ladder)
// is the caller's, the store only keeps it. It reports whether on was
// called.
func commitEscalation(ctx context.Context, tx dbtx, w *rows, e *engine.Escalation, msgs []engine.Outbound, on func(engine.Escalation, []engine.Outbound) []engine.Timer) (bool, error) {
	if e == nil {
		return false, nil
	}
	var escID uint64
	if err := tx.QueryRow(ctx, `SELECT nextval('escalations_seq')`).Scan(&escID); err != nil {
		return false, err
	}
	e.ID = escID
	b, err := json.Marshal(e)
	if err != nil {
		return false, err
	}
	w.escalation(int64(escID), string(e.Patient), b)
	if on == nil {
		return false, nil
	}
	for _, t := range on(*e, msgs) {
		setTimer(w, storage.EscalationOwner(escID), t)
	}
	return true, nil
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

// useInvite marks the invite the step presented as used by its patient:
// the invite is read from tx at once, its update goes to w.
func useInvite(ctx context.Context, tx dbtx, w *rows, st storage.Step) error {
	var raw []byte
	err := tx.QueryRow(ctx, `SELECT body FROM invites WHERE token = $1`, st.Invite).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	var inv engine.Invite
	if json.Unmarshal(raw, &inv) != nil {
		return nil
	}
	inv.UsedBy, inv.UsedAt = st.Patient, st.Now
	b, err := json.Marshal(inv)
	if err != nil {
		return err
	}
	w.exec(`UPDATE invites SET body = $2, used_by = $3 WHERE token = $1`, st.Invite, b, string(st.Patient))
	return nil
}

// setTimer schedules (or, with a zero At, cancels) one of o's timers,
// replacing the key's earlier time and any claim on it.
func setTimer(w *rows, o storage.Owner, t engine.Timer) {
	kind, owner := ownerCols(o)
	if t.At.IsZero() {
		w.timer(timerID{kind, owner, t.Key}, -1, true)
		return
	}
	w.timer(timerID{kind, owner, t.Key}, ns(t.At), false)
}

// ownerCols returns the timers table's owner_kind and owner columns of o
// (migration 0003): the kind's name, and the patient ID or the escalation
// ID in decimal.
func ownerCols(o storage.Owner) (kind, owner string) {
	if o.Kind == storage.OwnerEscalation {
		return "escalation", strconv.FormatUint(o.Escalation, 10)
	}
	return "patient", string(o.Patient)
}

// ownerFromCols is ownerCols' inverse.
func ownerFromCols(kind, owner string) (storage.Owner, error) {
	switch kind {
	case "patient":
		return storage.PatientOwner(engine.PatientID(owner)), nil
	case "escalation":
		id, err := strconv.ParseUint(owner, 10, 64)
		if err != nil {
			return storage.Owner{}, fmt.Errorf("%w: timer of escalation %q", storage.ErrCorrupt, owner)
		}
		return storage.EscalationOwner(id), nil
	}
	return storage.Owner{}, fmt.Errorf("%w: timer owner kind %q", storage.ErrCorrupt, kind)
}

// resolveInvite looks up an invite token, locking it so two patients
// presenting the same token at once cannot both use it.
func resolveInvite(ctx context.Context, tx dbtx, token string, now time.Time) (engine.InviteResult, error) {
	var raw []byte
	err := tx.QueryRow(ctx, `SELECT body FROM invites WHERE token = $1 FOR UPDATE`, token).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return engine.InviteResult{Status: engine.InviteUnknown}, nil
	}
	if err != nil {
		return engine.InviteResult{}, err
	}
	var inv engine.Invite
	if err := json.Unmarshal(raw, &inv); err != nil {
		return engine.InviteResult{Status: engine.InviteUnknown}, nil
	}
	switch {
	case inv.UsedBy != "":
		return engine.InviteResult{Status: engine.InviteUsed}, nil
	case !now.Before(inv.Expires):
		return engine.InviteResult{Status: engine.InviteExpired}, nil
	}
	v := inv.Visit
	return engine.InviteResult{Status: engine.InviteOK, Visit: &v}, nil
}

// putOutbound queues ms; encoded, when not nil, holds ms already encoded
// (without ID); a nil element is encoded here.
func putOutbound(w *rows, ms []engine.Outbound, encoded [][]byte) error {
	for i, m := range ms {
		var b []byte
		if i < len(encoded) {
			b = encoded[i]
		}
		if b == nil {
			m.ID = 0
			var err error
			if b, err = json.Marshal(m); err != nil {
				return err
			}
		}
		d := m.Destination()
		w.message(d.Platform(), int16(m.Kind.Priority()), string(d), string(m.To), string(m.Patient), b)
	}
	return nil
}

func putAudit(w *rows, as []engine.Audit) error {
	for _, a := range as {
		b, err := json.Marshal(a)
		if err != nil {
			return err
		}
		w.auditLine(string(a.Patient), b)
	}
	return nil
}

// erase deletes everything stored about a patient inside tx: state,
// timers, read mark, visits, quarantined records, escalations and their
// ladders, audit lines, queued messages and used invites. Dedupe keys hold
// no personal data and stay.
func erase(ctx context.Context, tx dbtx, p engine.PatientID) error {
	for _, q := range []string{
		`DELETE FROM patients WHERE id = $1`,
		`DELETE FROM timers WHERE owner_kind = 'patient' AND owner = $1`,
		`DELETE FROM read_marks WHERE patient = $1`,
		`DELETE FROM visits WHERE patient = $1`,
		`DELETE FROM quarantine WHERE patient = $1`,
		`DELETE FROM transcript WHERE patient = $1`,
		`DELETE FROM timers WHERE owner_kind = 'escalation' AND owner IN (SELECT id::text FROM escalations WHERE patient = $1)`,
		`DELETE FROM escalations WHERE patient = $1`,
		`DELETE FROM audit WHERE patient = $1`,
		`DELETE FROM outbox WHERE to_id = $1 OR about = $1`,
		`DELETE FROM invites WHERE used_by = $1`,
	} {
		if _, err := tx.Exec(ctx, q, string(p)); err != nil {
			return err
		}
	}
	return nil
}

// quarantine records q (the caller has removed the unreadable record),
// audits it and queues the staff notice, inside tx.
func (s *Store) quarantine(ctx context.Context, tx dbtx, q storage.Quarantined) error {
	if err := tx.QueryRow(ctx, `INSERT INTO quarantine (patient, kind, key, value, at, reason) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
		string(q.Patient), q.Kind, q.Key, q.Value, q.At, q.Reason).Scan(&q.Seq); err != nil {
		return err
	}
	detail := fmt.Sprintf("%s record could not be read; kept as quarantine #%d", q.Kind, q.Seq)
	if q.Kind == storage.QuarantineState {
		detail += "; the patient continues from a fresh state"
	}
	var w rows
	if err := putAudit(&w, []engine.Audit{{At: q.At, Actor: "system", Action: "record_quarantined", Patient: q.Patient, Detail: detail}}); err != nil {
		return err
	}
	if f := s.notice.Load(); f != nil && *f != nil {
		if err := putOutbound(&w, (*f)(q), nil); err != nil {
			return err
		}
	}
	return w.flush(ctx, tx)
}

// Quarantine returns the records set aside, oldest first.
func (s *Store) Quarantine() ([]storage.Quarantined, error) {
	rows, err := s.pool.Query(context.Background(), `SELECT id, patient, kind, key, value, at, reason FROM quarantine ORDER BY id`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.Quarantined, error) {
		var q storage.Quarantined
		var p string
		err := r.Scan(&q.Seq, &p, &q.Kind, &q.Key, &q.Value, &q.At, &q.Reason)
		q.Patient = engine.PatientID(p)
		return q, err
	})
}

// PutInvite stores a new invite; an existing token is never overwritten.
func (s *Store) PutInvite(inv engine.Invite) error {
	b, err := json.Marshal(inv)
	if err != nil {
		return err
	}
	tag, err := s.pool.Exec(context.Background(), `INSERT INTO invites (token, used_by, body) VALUES ($1, $2, $3) ON CONFLICT (token) DO NOTHING`,
		inv.Token, string(inv.UsedBy), b)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return errors.New("invite token collision")
	}
	return nil
}

// StateRaw returns a patient's stored state and its raw bytes (nil when
// not stored), for Step.Prepared. It reads the last committed state
// without a lock: a row lock taken outside a transaction is a transaction
// of its own, with a commit that waits for the disk, and a step prepared
// from a state that changed meanwhile is recomputed by Apply anyway.
func (s *Store) StateRaw(id engine.PatientID) (engine.State, []byte, error) {
	var st engine.State
	var raw []byte
	err := s.pool.QueryRow(context.Background(), `SELECT state FROM patients WHERE id = $1`, string(id)).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && raw == nil) {
		return st, nil, nil
	}
	if err != nil {
		return st, nil, err
	}
	return st, raw, json.Unmarshal(raw, &st)
}

// State returns a patient's stored state.
func (s *Store) State(id engine.PatientID) (engine.State, bool, error) {
	st, raw, err := s.StateRaw(id)
	return st, raw != nil, err
}

// DueBefore claims and returns up to limit timers due at or before now,
// earliest first: timers claimed by another live instance are left to it,
// and those this instance claimed before are returned again (their lease
// renewed), so a failed step is retried on the next pass.
func (s *Store) DueBefore(now time.Time, limit int) ([]storage.Due, error) {
	rows, err := s.pool.Query(context.Background(), `WITH c AS (
			SELECT owner_kind, owner, key FROM timers
			WHERE due_ns <= $1 AND (claimed_by IS NULL OR claimed_by = $2 OR lease_until < now())
			ORDER BY due_ns, owner_kind, owner, key LIMIT $3 FOR UPDATE SKIP LOCKED)
		UPDATE timers t SET claimed_by = $2, lease_until = now() + $4 * interval '1 millisecond'
		FROM c WHERE t.owner_kind = c.owner_kind AND t.owner = c.owner AND t.key = c.key
		RETURNING t.owner_kind, t.owner, t.key, t.due_ns`, ns(now), s.instance, limit, s.leaseMS)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, scanDue)
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if !a.At.Equal(b.At) {
			return a.At.Before(b.At)
		}
		ak, ao := ownerCols(a.Owner)
		bk, bo := ownerCols(b.Owner)
		if ak != bk {
			return ak < bk
		}
		if ao != bo {
			return ao < bo
		}
		return a.Key < b.Key
	})
	return out, nil
}

// scanDue reads a timers row of owner_kind, owner, key, due_ns.
func scanDue(r pgx.CollectableRow) (storage.Due, error) {
	var d storage.Due
	var kind, owner string
	var n int64
	if err := r.Scan(&kind, &owner, &d.Key, &n); err != nil {
		return d, err
	}
	var err error
	d.Owner, err = ownerFromCols(kind, owner)
	d.At = fromNS(n)
	return d, err
}

// NextDue returns the earliest timer not claimed by another live instance.
func (s *Store) NextDue() (storage.Due, bool, error) {
	rows, err := s.pool.Query(context.Background(), `SELECT owner_kind, owner, key, due_ns FROM timers
		WHERE claimed_by IS NULL OR claimed_by = $1 OR lease_until < now()
		ORDER BY due_ns, owner_kind, owner, key LIMIT 1`, s.instance)
	if err != nil {
		return storage.Due{}, false, err
	}
	ds, err := pgx.CollectRows(rows, scanDue)
	if err != nil || len(ds) == 0 {
		return storage.Due{}, false, err
	}
	return ds[0], true, nil
}

// Timers returns the pending timers of a patient.
func (s *Store) Timers(id engine.PatientID) (map[string]time.Time, error) {
	return s.ownerTimers(storage.PatientOwner(id))
}

// EscalationTimers returns the pending timers of an escalation (its
// ladder).
func (s *Store) EscalationTimers(id uint64) (map[string]time.Time, error) {
	return s.ownerTimers(storage.EscalationOwner(id))
}

func (s *Store) ownerTimers(o storage.Owner) (map[string]time.Time, error) {
	kind, owner := ownerCols(o)
	rows, err := s.pool.Query(context.Background(), `SELECT owner_kind, owner, key, due_ns FROM timers WHERE owner_kind = $1 AND owner = $2`, kind, owner)
	if err != nil {
		return nil, err
	}
	ds, err := pgx.CollectRows(rows, scanDue)
	out := map[string]time.Time{}
	for _, d := range ds {
		out[d.Key] = d.At
	}
	return out, err
}

// Outbox claims and returns up to limit queued messages of one platform,
// highest priority first and in queue order within a priority.
func (s *Store) Outbox(platform string, limit int) ([]engine.Outbound, error) {
	return s.OutboxScan(platform, limit, math.MaxInt32, nil)
}

// OutboxScan claims and returns up to limit queued messages of one
// platform in delivery order, leaving out those whose destination skip
// rejects (at most maxKeys entries are looked at). Messages claimed by
// another live instance, and every message to a destination another
// instance holds a claim for, are left to that instance; this instance's
// own earlier claims are returned again with their lease renewed.
//
// Only the messages claimed are locked, not the maxKeys looked at: a row
// lock is a write, and a dispatcher pass that locked thousands of queued
// check-ins to claim a few dozen held up every step's commit, and with it
// the red flags behind them. A message another instance locked or claimed
// between the look and the lock is left to it, with every later message
// to its destination, so one chat's messages never go out from two
// instances at once.
//
// An entry that cannot be decoded is quarantined and left out.
func (s *Store) OutboxScan(platform string, limit, maxKeys int, skip func(engine.PatientID) bool) ([]engine.Outbound, error) {
	ctx := context.Background()
	var out []engine.Outbound
	_, err := s.tx(ctx, func(tx pgx.Tx) error {
		out = nil
		rows, err := tx.Query(ctx, `SELECT id, dest FROM outbox o
			WHERE platform = $1 AND (claimed_by IS NULL OR claimed_by = $2 OR lease_until < now())
			AND NOT EXISTS (SELECT 1 FROM outbox x WHERE x.dest = o.dest AND x.claimed_by IS NOT NULL
				AND x.claimed_by <> $2 AND x.lease_until >= now())
			ORDER BY priority, id LIMIT $3`, platform, s.instance, maxKeys)
		if err != nil {
			return err
		}
		var ids []int64
		var dests []string
		var id int64
		var dest string
		_, err = pgx.ForEachRow(rows, []any{&id, &dest}, func() error {
			if len(ids) < limit && (skip == nil || !skip(engine.PatientID(dest))) {
				ids, dests = append(ids, id), append(dests, dest)
			}
			return nil
		})
		if err != nil || len(ids) == 0 {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT id FROM outbox
			WHERE id = ANY($1) AND (claimed_by IS NULL OR claimed_by = $2 OR lease_until < now())
			FOR UPDATE SKIP LOCKED`, ids, s.instance)
		if err != nil {
			return err
		}
		locked := map[int64]bool{}
		if _, err := pgx.ForEachRow(rows, []any{&id}, func() error {
			locked[id] = true
			return nil
		}); err != nil {
			return err
		}
		lost := map[string]bool{} // destinations with a message left to another instance
		keep := ids[:0]
		for i, id := range ids {
			if !locked[id] {
				lost[dests[i]] = true
			}
			if !lost[dests[i]] {
				keep = append(keep, id)
			}
		}
		if ids = keep; len(ids) == 0 {
			return nil
		}
		rows, err = tx.Query(ctx, `UPDATE outbox SET claimed_by = $2, lease_until = now() + $3 * interval '1 millisecond'
			WHERE id = ANY($1) RETURNING id, dest, body`, ids, s.instance, s.leaseMS)
		if err != nil {
			return err
		}
		type entry struct {
			dest string
			body []byte
		}
		got := map[int64]entry{}
		var body []byte
		if _, err := pgx.ForEachRow(rows, []any{&id, &dest, &body}, func() error {
			got[id] = entry{dest, bytes.Clone(body)}
			return nil
		}); err != nil {
			return err
		}
		for _, id := range ids {
			e, ok := got[id]
			if !ok {
				continue
			}
			var m engine.Outbound
			if err := json.Unmarshal(e.body, &m); err != nil {
				if _, err := tx.Exec(ctx, `DELETE FROM outbox WHERE id = $1`, id); err != nil {
					return err
				}
				q := storage.Quarantined{Patient: engine.PatientID(e.dest), Kind: storage.QuarantineOutbox, Key: []byte(fmt.Sprint(id)), Value: e.body, At: time.Now(), Reason: err.Error()}
				if err := s.quarantine(ctx, tx, q); err != nil {
					return err
				}
				continue
			}
			m.ID = uint64(id)
			out = append(out, m)
		}
		return nil
	})
	return out, err
}

// OutboxAll returns up to limit queued messages of every platform in
// (platform, priority, queue) order, without claiming them (tests, tools).
func (s *Store) OutboxAll(limit int) ([]engine.Outbound, error) {
	rows, err := s.pool.Query(context.Background(), `SELECT id, body FROM outbox ORDER BY platform, priority, id LIMIT $1`, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (engine.Outbound, error) {
		var id int64
		var body []byte
		var m engine.Outbound
		if err := r.Scan(&id, &body); err != nil {
			return m, err
		}
		if err := json.Unmarshal(body, &m); err != nil {
			return m, fmt.Errorf("%w: outbox entry %d: %v", storage.ErrCorrupt, id, err)
		}
		m.ID = uint64(id)
		return m, nil
	})
}

// OutboxDepth counts queued messages across platforms.
func (s *Store) OutboxDepth() (int, error) {
	var n int
	err := s.pool.QueryRow(context.Background(), `SELECT count(*) FROM outbox`).Scan(&n)
	return n, err
}

// Delivered removes sent messages from the outbox.
func (s *Store) Delivered(ms ...engine.Outbound) error {
	if len(ms) == 0 {
		return nil
	}
	ids := make([]int64, len(ms))
	for i, m := range ms {
		ids[i] = int64(m.ID)
	}
	// Not abandoned with a caller's context: the messages were sent.
	_, err := s.pool.Exec(context.Background(), `DELETE FROM outbox WHERE id = ANY($1)`, ids)
	return err
}

// Retry records a failed attempt and when to try again; the claim stays.
func (s *Store) Retry(m engine.Outbound) error {
	id := m.ID
	m.ID = 0
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(context.Background(), `UPDATE outbox SET body = $2 WHERE id = $1`, int64(id), b)
	return err
}

// Enqueue queues messages that belong to no patient step.
func (s *Store) Enqueue(ms ...engine.Outbound) error {
	ctx := context.Background()
	_, err := s.tx(ctx, func(tx pgx.Tx) error {
		var w rows
		if err := putOutbound(&w, ms, nil); err != nil {
			return err
		}
		return w.flush(ctx, tx)
	})
	return err
}

// AppendAudit adds lines to the audit trail, for actions outside a patient
// step (reads of patient data).
func (s *Store) AppendAudit(ctx context.Context, as ...engine.Audit) error {
	if len(as) == 0 {
		return nil
	}
	_, err := s.tx(ctx, func(tx pgx.Tx) error {
		var w rows
		if err := putAudit(&w, as); err != nil {
			return err
		}
		return w.flush(ctx, tx)
	})
	return err
}

// PruneDedupe forgets dedupe keys applied before t.
func (s *Store) PruneDedupe(t time.Time) (int, error) {
	tag, err := s.pool.Exec(context.Background(), `DELETE FROM dedupe WHERE at_ns < $1`, ns(t))
	return int(tag.RowsAffected()), err
}

// ApplyEscalation loads escalation id under its row lock, calls fn with
// it, and commits the update in one transaction. With due set, it is
// skipped (false) when that ladder timer is gone, so a ladder step is
// never applied twice.
func (s *Store) ApplyEscalation(ctx context.Context, id uint64, due *storage.Due, now time.Time, fn func(e *engine.Escalation) (storage.EscalationUpdate, error)) (bool, error) {
	o := storage.EscalationOwner(id)
	kind, owner := ownerCols(o)
	quarantined := false
	ok, err := s.tx(ctx, func(tx pgx.Tx) error {
		var raw []byte
		err := tx.QueryRow(ctx, `SELECT body FROM escalations WHERE id = $1 FOR UPDATE`, int64(id)).Scan(&raw)
		found := err == nil
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if due != nil {
			tag, err := tx.Exec(ctx, `DELETE FROM timers WHERE owner_kind = $1 AND owner = $2 AND key = $3 AND due_ns = $4`, kind, owner, due.Key, ns(due.At))
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				return errSkip
			}
		}
		if !found {
			if due != nil {
				return nil // the ladder of an erased escalation just ends
			}
			return storage.ErrNotFound
		}
		var e engine.Escalation
		if err := json.Unmarshal(raw, &e); err != nil {
			// Set it aside and end its ladder, so it cannot hold up others.
			if _, err := tx.Exec(ctx, `DELETE FROM escalations WHERE id = $1`, int64(id)); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `DELETE FROM timers WHERE owner_kind = $1 AND owner = $2`, kind, owner); err != nil {
				return err
			}
			q := storage.Quarantined{Patient: engine.PatientID("escalation:" + owner), Kind: storage.QuarantineEscalation, Key: []byte(fmt.Sprint(id)), Value: raw, At: now, Reason: err.Error()}
			if err := s.quarantine(ctx, tx, q); err != nil {
				return err
			}
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
			if _, err := tx.Exec(ctx, `UPDATE escalations SET body = $2 WHERE id = $1`, int64(id), b); err != nil {
				return err
			}
		}
		if up.StopLadder {
			if _, err := tx.Exec(ctx, `DELETE FROM timers WHERE owner_kind = $1 AND owner = $2`, kind, owner); err != nil {
				return err
			}
		}
		var w rows
		for _, t := range up.Timers {
			setTimer(&w, o, t)
		}
		if err := putOutbound(&w, up.Messages, nil); err != nil {
			return err
		}
		if err := putAudit(&w, up.Audit); err != nil {
			return err
		}
		return w.flush(ctx, tx)
	})
	if err != nil {
		return false, fmt.Errorf("escalation %d: %w", id, err)
	}
	if quarantined && due == nil {
		return false, fmt.Errorf("escalation %d: %w (its record could not be read and was quarantined)", id, storage.ErrNotFound)
	}
	return ok, nil
}

// Escalation returns one escalation record.
func (s *Store) Escalation(id uint64) (engine.Escalation, error) {
	var e engine.Escalation
	var raw []byte
	err := s.pool.QueryRow(context.Background(), `SELECT body FROM escalations WHERE id = $1`, int64(id)).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return e, storage.ErrNotFound
	}
	if err != nil {
		return e, err
	}
	return e, json.Unmarshal(raw, &e)
}

// Escalations returns the escalation records, oldest first.
func (s *Store) Escalations() ([]engine.Escalation, error) {
	return decodeAll[engine.Escalation](s, `SELECT body FROM escalations ORDER BY id`)
}

// Audit returns the audit trail, oldest first.
func (s *Store) Audit() ([]engine.Audit, error) {
	return decodeAll[engine.Audit](s, `SELECT body FROM audit ORDER BY id`)
}

func decodeAll[T any](s *Store, q string, args ...any) ([]T, error) {
	rows, err := s.pool.Query(context.Background(), q, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (T, error) {
		var x T
		var b []byte
		if err := r.Scan(&b); err != nil {
			return x, err
		}
		if err := json.Unmarshal(b, &x); err != nil {
			return x, fmt.Errorf("%w: %v", storage.ErrCorrupt, err)
		}
		return x, nil
	})
}

// Patients calls fn with every stored patient state, in ID order. fn must
// not call back into the store. A state that cannot be decoded is passed
// over and quarantined (the patient continues from a fresh state).
func (s *Store) Patients(fn func(engine.State) error) error {
	ctx := context.Background()
	rows, err := s.pool.Query(ctx, `SELECT id, state FROM patients WHERE state IS NOT NULL ORDER BY id`)
	if err != nil {
		return err
	}
	type bad struct {
		id     string
		raw    []byte
		reason string
	}
	var bads []bad
	var id string
	var raw []byte
	if _, err := pgx.ForEachRow(rows, []any{&id, &raw}, func() error {
		if strings.HasPrefix(id, "escalation:") {
			return nil
		}
		var st engine.State
		if err := json.Unmarshal(raw, &st); err != nil {
			bads = append(bads, bad{id, bytes.Clone(raw), err.Error()})
			return nil
		}
		return fn(st)
	}); err != nil {
		return err
	}
	for _, b := range bads {
		if _, err := s.tx(ctx, func(tx pgx.Tx) error {
			cur, err := lockPatient(ctx, tx, engine.PatientID(b.id))
			if err != nil {
				return err
			}
			var st engine.State
			if cur == nil || json.Unmarshal(cur, &st) == nil {
				return errSkip // rewritten or gone meanwhile
			}
			if _, err := tx.Exec(ctx, `UPDATE patients SET state = NULL WHERE id = $1`, b.id); err != nil {
				return err
			}
			return s.quarantine(ctx, tx, storage.Quarantined{Patient: engine.PatientID(b.id), Kind: storage.QuarantineState, Key: []byte(b.id), Value: cur, At: time.Now(), Reason: b.reason})
		}); err != nil {
			return err
		}
	}
	return nil
}

// PatientIDs returns the IDs of the stored patients on platform, in ID
// order, without decoding their states.
func (s *Store) PatientIDs(platform string) ([]engine.PatientID, error) {
	rows, err := s.pool.Query(context.Background(), `SELECT id FROM patients WHERE state IS NOT NULL AND id >= $1 AND id < $2 ORDER BY id`,
		platform+":", platform+";")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (engine.PatientID, error) {
		var id string
		err := r.Scan(&id)
		return engine.PatientID(id), err
	})
}

// ReadMarks returns the read marks of platform's patients, keyed by patient.
func (s *Store) ReadMarks(platform string) (map[engine.PatientID]string, error) {
	rows, err := s.pool.Query(context.Background(), `SELECT patient, mark FROM read_marks WHERE patient >= $1 AND patient < $2`,
		platform+":", platform+";")
	if err != nil {
		return nil, err
	}
	out := map[engine.PatientID]string{}
	var p, m string
	_, err = pgx.ForEachRow(rows, []any{&p, &m}, func() error {
		out[engine.PatientID(p)] = m
		return nil
	})
	return out, err
}

// SetReadMarks stores, in one transaction, how far each patient's platform
// conversation was read. Marks of patients without a stored state are not
// kept: an erased patient stays erased.
func (s *Store) SetReadMarks(marks map[engine.PatientID]string) error {
	if len(marks) == 0 {
		return nil
	}
	ctx := context.Background()
	_, err := s.tx(ctx, func(tx pgx.Tx) error {
		for p, m := range marks {
			if _, err := tx.Exec(ctx, `INSERT INTO read_marks (patient, mark)
				SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM patients WHERE id = $1 AND state IS NOT NULL)
				ON CONFLICT (patient) DO UPDATE SET mark = excluded.mark`, string(p), m); err != nil {
				return err
			}
		}
		return nil
	})
	return err
}

// PatientRecord collects everything stored about a patient, for export.
func (s *Store) PatientRecord(p engine.PatientID) (storage.Record, error) {
	var r storage.Record
	st, found, err := s.State(p)
	if err != nil {
		return r, err
	}
	if !found {
		return r, storage.ErrNotFound
	}
	r.State = st
	if r.Visits, err = decodeAll[engine.Visit](s, `SELECT body FROM visits WHERE patient = $1 ORDER BY id`, string(p)); err != nil {
		return r, err
	}
	if r.Escalations, err = decodeAll[engine.Escalation](s, `SELECT body FROM escalations WHERE patient = $1 ORDER BY id`, string(p)); err != nil {
		return r, err
	}
	// The conversation, both sides: exported with the record and shown on
	// the desk's patient page, as the bbolt store does.
	if r.Transcript, err = decodeAll[storage.TranscriptLine](s, `SELECT body FROM transcript WHERE patient = $1 ORDER BY id`, string(p)); err != nil {
		return r, err
	}
	r.Audit, err = decodeAll[engine.Audit](s, `SELECT body FROM audit WHERE patient = $1 ORDER BY id`, string(p))
	return r, err
}

// Applied reports whether a platform update's key was committed already.
func (s *Store) Applied(key string) (bool, error) {
	var one int
	err := s.pool.QueryRow(context.Background(), `SELECT 1 FROM dedupe WHERE key = $1`, key).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// ApplyStaff commits a staff command's invite, answers and update key in
// one transaction, once per key: when the key was already committed (the
// platform redelivered the update, or two instances raced) it commits
// nothing and returns false, so a redelivered /visit never creates a second
// invite. The key is inserted first, so of two racing instances one waits
// on the other's row and then finds it.
func (s *Store) ApplyStaff(ctx context.Context, st storage.StaffStep) (bool, error) {
	return s.tx(ctx, func(tx pgx.Tx) error {
		if st.Dedupe != "" {
			tag, err := tx.Exec(ctx, `INSERT INTO dedupe (key, at_ns) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`, st.Dedupe, ns(st.Now))
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				return errSkip
			}
		}
		if inv := st.Invite; inv != nil {
			b, err := json.Marshal(inv)
			if err != nil {
				return err
			}
			tag, err := tx.Exec(ctx, `INSERT INTO invites (token, used_by, body) VALUES ($1, $2, $3) ON CONFLICT (token) DO NOTHING`,
				inv.Token, string(inv.UsedBy), b)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				return errors.New("invite token collision")
			}
		}
		var w rows
		if err := putOutbound(&w, append([]engine.Outbound(nil), st.Messages...), nil); err != nil {
			return err
		}
		return w.flush(ctx, tx)
	})
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
