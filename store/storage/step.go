package storage

import (
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
)

// Step is what a store's Apply needs to know about the step it commits.
type Step struct {
	// Patient is the conversation the step belongs to.
	Patient engine.PatientID
	// Dedupe, when set, is the platform update's key: a step with a key
	// already committed is skipped (Apply returns false, nil).
	Dedupe string
	// Due, when set, is the patient's timer being fired: it is removed in
	// the same transaction, and the step is skipped when it is no longer
	// there.
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
	// OnEscalation, when set, is called inside the transaction once the
	// step's new escalation is stored and has its ID (e.ID); never for a
	// step that raised none. It may change msgs, the step's messages (a
	// copy of the result's), in place: the caller ties its alerts to the
	// escalation and gives them their buttons. It returns timers to
	// schedule as the escalation's own (EscalationOwner(e.ID)): the first
	// rung of its ladder. It may run more than once and must depend only
	// on its arguments. The store adds nothing of its own to an escalation:
	// without OnEscalation, the record is stored and nothing else changes.
	OnEscalation func(e engine.Escalation, msgs []engine.Outbound) []engine.Timer
}

// Prepared is a step result computed from a known stored state.
type Prepared struct {
	// From is the stored state's raw bytes the result was computed from
	// (nil for a patient not stored yet).
	From []byte
	// Result is the step's result; State is Result.State, encoded.
	Result engine.Result
	State  []byte
	// Messages, when set, is Result.Messages encoded by store.EncodeMessages.
	Messages [][]byte
}

// Input is what a store's Apply hands to a step function.
type Input struct {
	// State is the patient's stored state; Found is false for a new patient.
	State engine.State
	Found bool
	// Invite is the resolved invite when Step.Invite was set.
	Invite engine.InviteResult
}

// StaffStep is what a staff command leaves behind, committed together by
// ApplyStaff.
type StaffStep struct {
	// Dedupe is the platform update's key; empty for commands without one
	// (the console), which are then never recognised as redelivered.
	Dedupe string
	// Invite, when set, is a new invite the command created.
	Invite *engine.Invite
	// Messages are the command's answers to staff.
	Messages []engine.Outbound
	// Now stamps the dedupe key.
	Now time.Time
}
