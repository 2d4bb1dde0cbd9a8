package storage

import (
	"errors"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
)

// Who wrote a transcript line (TranscriptLine.From).
const (
	FromPatient = "patient"
	FromBot     = "bot"
	FromClinic  = "clinic"
)

// TranscriptLine is one message of a patient's conversation, kept so staff
// can read both sides on the desk. It is health data: it is erased with the
// patient, exported with the record, and never logged.
type TranscriptLine struct {
	At time.Time `json:"at"`
	// From is FromPatient, FromBot or FromClinic (a staff reply).
	From string `json:"from"`
	// Kind is the outbound message's kind (bot and clinic lines).
	Kind engine.Kind `json:"kind,omitempty"`
	// Text is what was written; Choice the button pressed, if any.
	Text   string `json:"text,omitempty"`
	Choice string `json:"choice,omitempty"`
	// Level is set on red-flag instructions the bot sent.
	Level engine.Level `json:"level,omitempty"`
	// Staff names the staff member who wrote a clinic line.
	Staff string `json:"staff,omitempty"`
}

// SentLine is the transcript line of a message sent to the patient: the
// bot's, or the clinic team's when a staff member wrote it (m.Staff).
// Both stores write it the same way.
func SentLine(m engine.Outbound) TranscriptLine {
	if m.Staff != "" {
		return TranscriptLine{At: m.Created, From: FromClinic, Kind: m.Kind, Text: m.Text, Staff: m.Staff}
	}
	return TranscriptLine{At: m.Created, From: FromBot, Kind: m.Kind, Text: m.Text, Level: m.Level}
}

// DeskLogin is a one-time sign-in link for the staff desk. The store keeps
// only the SHA-256 of its token, so a copy of the database cannot be used
// to sign in.
type DeskLogin struct {
	// Staff is the staff member's ID ("telegram:42"); Name how the desk
	// shows them and writes them into the audit trail.
	Staff   string    `json:"staff"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	// Used is set when the link started a session; it never starts another.
	Used time.Time `json:"used,omitempty"`
}

// Errors of a store's UseDeskLogin.
var (
	// ErrLoginUnknown means no such sign-in link was issued.
	ErrLoginUnknown = errors.New("sign-in link unknown")
	// ErrLoginExpired means the link's time ran out.
	ErrLoginExpired = errors.New("sign-in link expired")
	// ErrLoginUsed means the link already started a session.
	ErrLoginUsed = errors.New("sign-in link already used")
)

// DeskSession is one signed-in staff browser on the desk. The store keeps
// it under the SHA-256 of the session ID the browser holds in its cookie,
// never the ID itself, so a copy of the database (or a backup) cannot be
// used to act as a signed-in staff member. Keeping sessions in the store,
// not in one process's memory, lets every desk instance on one database
// accept them and lets them outlive a restart.
type DeskSession struct {
	// Staff is the staff member's ID ("telegram:42"); Name how the desk
	// shows them and writes them into the audit trail.
	Staff string `json:"staff"`
	Name  string `json:"name"`
	// CSRF is the token every POST of this session must carry. It is
	// worthless without the session's cookie, which only the browser has.
	CSRF string `json:"csrf"`
	// Created is when the session started (its absolute expiry counts
	// from it); Seen when it was last used, as last written (see
	// TouchDeskSession: the desk writes it at most once a minute).
	Created time.Time `json:"created"`
	Seen    time.Time `json:"seen"`
}

// ErrSessionUnknown is returned by a store's DeskSession when no session
// has this hash: it was never started, was signed out, or was pruned.
var ErrSessionUnknown = errors.New("desk session unknown")
