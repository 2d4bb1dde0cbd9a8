// Package storage holds the types and errors every store backend speaks:
// the steps the service commits (Step, Prepared, Input, StaffStep,
// EscalationUpdate), the timers it schedules and fires (Owner, Due), what
// it reads back (Record, TranscriptLine, Quarantined), the desk's sign-in
// links and sessions (DeskLogin, DeskSession), and the sentinel errors
// (ErrNotFound, ErrSkip, ErrOwner, ErrCorrupt, ErrSessionUnknown,
// ErrLogin...).
//
// It is the contract between the service and its stores, and nothing
// more: plain data, a few small methods and pure helpers (PatientOwner,
// SentLine, LastActivity), and no database. The service's store
// interfaces (service/service.go and the files that declare StepStore,
// TimerStore, OutboxStore, ...) are written in these types, and both
// backends implement them: the bbolt store (package store) and the
// PostgreSQL store (store/postgres). Keeping the contract here, rather
// than in the bbolt package, means the PostgreSQL backend does not link
// bbolt just to name a Step; only its import from a bbolt file does.
//
// Package store re-exports every name here as an alias (type Step =
// storage.Step, var ErrNotFound = storage.ErrNotFound), so code written
// against store.Step keeps compiling and errors.Is(err, store.ErrNotFound)
// matches an error of either backend.
package storage
