package storage

import "errors"

// The errors every store backend returns for the same conditions. The
// bbolt store (package store) and the PostgreSQL store (store/postgres)
// return these very values, wrapped or not, so callers test them with
// errors.Is whatever backend they run on.
var (
	// ErrNotFound means the record does not exist (or was erased).
	ErrNotFound = errors.New("not found")
	// ErrSkip may be returned by an Apply fn to commit nothing.
	ErrSkip = errors.New("skip")
	// ErrOwner is returned by Apply for a Step whose Due is not one of the
	// step's patient's timers: an escalation's timers are fired with
	// ApplyEscalation, and one patient's step never fires another's timer.
	ErrOwner = errors.New("the timer is not the step's patient's")
	// ErrCorrupt means the database is not a readable Aftercare database
	// (or a record in it cannot be read).
	ErrCorrupt = errors.New("database file is corrupt or not an Aftercare database")
)
