package store

import "errors"

// Errors returned by Open.
var (
	// ErrLocked means another process holds the database file.
	ErrLocked = errors.New("database is in use by another process")
	// ErrCorrupt means the file is not a readable Aftercare database.
	ErrCorrupt = errors.New("database file is corrupt or not an Aftercare database")
	// ErrSchema means the file was written by a newer Aftercare.
	ErrSchema = errors.New("database schema is newer than this program")
)

// ErrSkip may be returned by an Apply fn to commit nothing.
var ErrSkip = errors.New("skip")

// ErrNotFound means the record does not exist (or was erased).
var ErrNotFound = errors.New("not found")

// ErrOwner is returned by Apply for a Step whose Due is not one of the
// step's patient's timers: an escalation's timers are fired with
// ApplyEscalation, and one patient's step never fires another's timer.
var ErrOwner = errors.New("the timer is not the step's patient's")

// ErrClosed is returned by writes made after Close.
var ErrClosed = errors.New("store is closed")
