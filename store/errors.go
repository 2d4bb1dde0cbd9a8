package store

import (
	"errors"

	"github.com/aftercare-clinic/aftercare/store/storage"
)

// Errors returned by Open.
var (
	// ErrLocked means another process holds the database file.
	ErrLocked = errors.New("database is in use by another process")
	// ErrCorrupt is storage.ErrCorrupt: the file is not a readable Aftercare database.
	ErrCorrupt = storage.ErrCorrupt
	// ErrSchema means the file was written by a newer Aftercare.
	ErrSchema = errors.New("database schema is newer than this program")
)

// ErrSkip is storage.ErrSkip: an Apply fn returns it to commit nothing.
var ErrSkip = storage.ErrSkip

// ErrNotFound is storage.ErrNotFound: the record does not exist (or was erased).
var ErrNotFound = storage.ErrNotFound

// ErrOwner is storage.ErrOwner: Apply's Step fires a timer not the step's patient's.
var ErrOwner = storage.ErrOwner

// ErrClosed is returned by writes made after Close.
var ErrClosed = errors.New("store is closed")
