package storage

import (
	"strconv"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
)

// OwnerKind says what a timer belongs to.
type OwnerKind uint8

// The owners a timer can have. The zero value is a patient's, so a Due
// built with only a patient is one of theirs.
const (
	// OwnerPatient timers belong to a patient's conversation (check-ins,
	// reminders, quiet-hours holds); the engine names their keys and fires
	// them.
	OwnerPatient OwnerKind = iota
	// OwnerEscalation timers belong to an escalation: the rungs of its
	// ladder, named and fired by the service (service/ladder.go).
	OwnerEscalation
)

// String returns "patient" or "escalation", for logs.
func (k OwnerKind) String() string {
	switch k {
	case OwnerPatient:
		return "patient"
	case OwnerEscalation:
		return "escalation"
	}
	return "owner(" + strconv.Itoa(int(k)) + ")"
}

// Owner is whose a timer is. The store keeps it as given and gives it back
// unchanged; it never reads a meaning into a timer's owner or key.
type Owner struct {
	Kind OwnerKind
	// Patient is the patient, for OwnerPatient.
	Patient engine.PatientID
	// Escalation is the escalation's ID, for OwnerEscalation.
	Escalation uint64
}

// PatientOwner is the owner of a patient's conversation timers.
func PatientOwner(p engine.PatientID) Owner { return Owner{Kind: OwnerPatient, Patient: p} }

// EscalationOwner is the owner of escalation id's ladder timers.
func EscalationOwner(id uint64) Owner { return Owner{Kind: OwnerEscalation, Escalation: id} }

// String returns the patient ID, or "escalation <id>", for logs.
func (o Owner) String() string {
	if o.Kind == OwnerEscalation {
		return "escalation " + strconv.FormatUint(o.Escalation, 10)
	}
	return string(o.Patient)
}

// Due is a timer that is due or will be: its owner, its key (the owner's
// name for it) and when it falls due.
type Due struct {
	Owner
	Key string
	At  time.Time
}
