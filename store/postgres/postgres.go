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
//
// # Files
//
// Named as the bbolt store's are, so a concept is found in the same file in
// both backends:
//
//	postgres.go     Open, Options, Close, the store's small helpers
//	migrate.go      the embedded, versioned schema (migrations/)
//	group.go        group commit: how concurrent steps are cut into groups
//	steps.go        Apply, a group's transaction and the step commit
//	batch.go        a group's rows written one statement per table
//	timers.go       the schedule: setting, claiming due and listing timers
//	outbox.go       queued messages: claiming with a lease, delivered, retry
//	escalations.go  escalation records, and their updates (ApplyEscalation)
//	invites.go      one-time enrollment links
//	records.go      reads of states and records, audit, erasure, quarantine
//	staff.go        staff steps (ApplyStaff)
//	desk.go         the staff desk's sign-ins and sessions
//	activity.go     the last-activity and visit-date indexes
//	lease.go        the lease table (platform connections, housekeeping)
//	import.go       aftercare migrate: copying a bbolt file in
//	checksum.go     the per-bucket checksums migrate verifies
package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

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
