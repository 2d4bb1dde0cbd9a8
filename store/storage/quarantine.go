package storage

import (
	"strconv"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
)

// Kinds of quarantined records.
const (
	QuarantineState      = "state"
	QuarantineOutbox     = "outbox"
	QuarantineTimer      = "timer"
	QuarantineEscalation = "escalation"
)

// Quarantined is a record set aside because it could not be decoded. Its
// bytes are kept exactly as they were, for a person to inspect or repair.
type Quarantined struct {
	// Seq numbers quarantined records (from the key).
	Seq uint64 `json:"-"`
	// Patient is whose record it was: the patient, the outbox entry's
	// destination, or "escalation:<id>"; empty when the record names none.
	Patient engine.PatientID `json:"patient,omitempty"`
	// Kind is what the record was (QuarantineState, ...).
	Kind string `json:"kind"`
	// Key and Value are the record's original key and bytes.
	Key   []byte `json:"key"`
	Value []byte `json:"value,omitempty"`
	// At is when it was set aside; Reason is the decode error.
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
}

// QuarantineNotice turns a quarantined record into the staff messages that
// tell people about it (the service fans a notice out to every staff
// channel). It runs inside the write transaction, so it must not call back
// into the store; it may be called more than once for one record (a group
// commit may run twice) and must return the same messages each time.
type QuarantineNotice func(q Quarantined) []engine.Outbound

// String describes a quarantined record for people, without its bytes.
func (q Quarantined) String() string {
	who := string(q.Patient)
	if who == "" {
		who = "(no patient)"
	}
	return "#" + strconv.FormatUint(q.Seq, 10) + " " + q.Kind + " of " + who + " at " + q.At.UTC().Format(time.RFC3339) + ": " + q.Reason
}
