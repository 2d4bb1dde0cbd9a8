// Package store keeps Aftercare's durable data in one bbolt file:
// conversation states, the time-ordered schedule, the outbox of messages to
// send, escalations, visits, the audit trail and the keys of platform
// updates already applied.
//
// The types and errors it shares with the PostgreSQL store (Step, Input,
// Prepared, Due, Owner, Record, TranscriptLine, Quarantined, DeskSession,
// ErrNotFound, ...) are defined in package store/storage, which has no
// bbolt dependency; the names here are aliases of them (store.Step is
// storage.Step, store.ErrNotFound is storage.ErrNotFound), so either
// spelling works and errors.Is matches the errors of both backends.
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
//	meta        "schema" -> uint64 schema version (5)
//	states      patient -> 0x02 | transcript head(8) | engine.State
//	            (binary, see EncodeState; JSON states and records without
//	            a head, of earlier versions, are still read)
//	timers      due(8, big-endian unix ns) | owner | 0x00 | key -> empty
//	timer_idx   owner | 0x00 | key -> due(8)
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
//	transcript  seq(8) -> prev(8) | patient | TranscriptLine (JSON): both
//	            sides of the conversation, for the staff desk; one chain
//	            per patient from the head in its state (transcript.go)
//	desk_logins sha256(token) -> DeskLogin (JSON): one-time sign-in links
//	desk_sessions sha256(session ID) -> DeskSession (JSON): signed-in
//	            staff, shared by every instance
//	activity    last activity(8) | patient -> empty (retention's index)
//	visit_dates visit date(8) | patient -> empty (/today's index)
//	patient_idx patient -> last activity(8) | visit date(8): the
//	            patient's current index entries (see activity.go)
//	by_patient  patient | 0x00 | kind(1) | id -> empty: the audit lines,
//	            escalations and used invites naming a patient, for
//	            erasure (see bypatient.go)
//
// A timer's owner (see Owner) is a tag byte and an ID: 'p' and the patient
// ID, or 'e' and the escalation ID in decimal. Schema 1 had no tag and
// kept ladder timers under a pseudo patient "escalation:<id>"; Open
// upgrades such a file (upgrade.go).
//
// Timers sort by due time, so the next due timer is the first key and the
// due ones are a prefix: finding them costs O(log n + due), never a scan.
//
// # Concurrency
//
// A Store is safe for concurrent use. The frequent writes (Apply,
// ApplyStaff, AppendAudit and the outbox writes Enqueue, Delivered and
// Retry, and the quarantine of bad records) go through one committer
// goroutine that commits, in one transaction, every write queued while the
// previous commit ran (group commit: one pair of fsyncs for many steps, and
// no added delay when idle). Apply's fn may run more than once and must be
// a pure function of its arguments. The rarer writes (ApplyEscalation,
// PutInvite, SetReadMarks, PruneDedupe, and the bucket setup in Open) run
// a bbolt transaction of their own; bbolt serialises them with the
// committer's.
// Callers serialise Apply calls for one patient (the service does), since
// each step reads the state the previous one wrote.
//
// # Files
//
//	store.go        Open, Options, Close, the bucket names, backups
//	steps.go        Apply and the step commit (one helper per bucket),
//	                ApplyStaff, erasure, dedupe keys
//	timers.go       the schedule: typed timer owners (Owner), setting,
//	                finding due and listing timers
//	upgrade.go      upgrading files of older schema versions
//	outbox.go       queued messages: scanning, delivered, retry
//	escalations.go  escalation records, and their updates (ApplyEscalation)
//	invites.go      one-time enrollment links
//	records.go      reads of states, visits, audit and read marks
//	transcript.go   the transcript log and each patient's chain
//	statecodec.go   the binary encoding of conversation states (schema 3)
//	jsonappend.go   the transcript's and the outbox's JSON, written by hand
//	sizes.go        record counts and sizes per bucket (the load's ceiling)
//	check.go        the integrity check (Check)
//	quarantine.go   records that could not be decoded, set aside
//	commit.go       the group committer
//	activity.go     the patient indexes: last activity, visit date
//	bypatient.go    the by_patient index: a patient's own records
//	errors.go       sentinel errors
package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/aftercare-clinic/aftercare/engine"
)

// SchemaVersion is the layout version this code writes. Open upgrades a
// file of an older version in place (see upgrade.go) and refuses a newer
// one. Schema 3 stores conversation states in binary (see EncodeState);
// JSON states of older files are still read and rewritten at each
// patient's next step, and the file is marked on open, so an older
// aftercare, which could not read the binary states, refuses it instead
// of setting every patient's state aside. Schema 4 added the patient
// indexes (activity, visit_dates, patient_idx, by_patient), built from the
// states and records when an older file is opened. Schema 5 keeps the
// transcript as an append-only log with a chain per patient
// (transcript.go), rewritten from the schema 4 layout on open.
const SchemaVersion = 5

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
	allBuckets   = [][]byte{bMeta, bStates, bTimers, bTimerIdx, bOutbox, bEscalations, bVisits, bAudit, bDedupe, bInvites, bReadMarks, bQuarantine, bTranscript, bDeskLogins, bDeskSessions, bActivity, bVisitDates, bPatientIdx, bByPatient}
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
	db, err := bolt.Open(path, 0o600, BoltOptions(o))
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

// BoltOptions returns the bbolt options Open uses for o. The freelist is
// kept as a map (FreelistMapType, as etcd runs it), whose page allocation
// does not search the whole list as the array's does. The freelist is
// still written at every commit: etcd's NoFreelistSync saved no bytes per
// message here (the freelist is a page or two in a commit of hundreds) but
// makes every Open rebuild it by reading the whole file, 14.6 s and
// 793 MiB resident for the load's store of a million check-ins (cold
// cache; 2.4 ms and 11 MiB with the freelist written), past the 2 s and
// 300 MB a restart may take. Nor is the mapping started large
// (InitialMmapSize): bbolt then grows the file by 16 MB beyond what a
// commit needs, so a new store is 16 MB at once and the first commit on
// a nearly full disk fails instead of the one that fills it
// (TestDiskWriteFailure in cmd/aftercare caught it). The load's bbolt ceiling
// opens its file with the same options, so it measures the same bbolt.
func BoltOptions(o Options) *bolt.Options {
	if o.Timeout == 0 {
		o.Timeout = time.Second
	}
	return &bolt.Options{
		Timeout:      o.Timeout,
		NoSync:       o.NoSync,
		FreelistType: bolt.FreelistMapType,
	}
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
		case binary.BigEndian.Uint64(v) < SchemaVersion:
			return upgrade(tx, binary.BigEndian.Uint64(v))
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

func timeKey(t time.Time) []byte { return u64(uint64(timeNS(t))) }

// timeNS is t in Unix nanoseconds as timeKey writes it (0 before 1970).
func timeNS(t time.Time) int64 {
	ns := t.UnixNano()
	if ns < 0 {
		ns = 0
	}
	return ns
}

func idxKey(p engine.PatientID, key string) []byte {
	b := make([]byte, 0, len(p)+1+len(key))
	b = append(b, p...)
	b = append(b, 0)
	return append(b, key...)
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
