package engine

import (
	"fmt"
	"strings"
)

// PatientID identifies one patient conversation across the whole system. It
// is "platform:address" (for example "telegram:123456789", "discord:80351110224678912",
// "console:local"); replay scripts use bare names like "p1". It is an opaque
// identifier, never a name or phone number, so it is safe to log.
type PatientID string

// NewPatientID joins a platform name and the platform's address for the chat.
func NewPatientID(platform, address string) PatientID {
	return PatientID(platform + ":" + address)
}

// Platform returns the platform part of the ID ("" for bare IDs).
func (p PatientID) Platform() string {
	if i := strings.IndexByte(string(p), ':'); i >= 0 {
		return string(p[:i])
	}
	return ""
}

// Address returns the platform's address for the chat (the whole ID for bare IDs).
func (p PatientID) Address() string {
	if i := strings.IndexByte(string(p), ':'); i >= 0 {
		return string(p[i+1:])
	}
	return string(p)
}

// Kind says what an outbound message is, so adapters and the outbox can
// prioritise (escalations and replies ahead of bulk check-ins) and staff
// tools can tell them apart.
type Kind string

// Outbound message kinds.
const (
	KindReply      Kind = "reply"      // an answer to something the patient did
	KindCheckin    Kind = "checkin"    // an automatic 24 h / 48 h check-in
	KindNudge      Kind = "nudge"      // a gentle reminder about an unanswered check-in
	KindEscalation Kind = "escalation" // red-flag instructions to the patient
	KindAlert      Kind = "alert"      // a red-flag alert to clinic staff
	KindNotice     Kind = "notice"     // an operational notice to staff (patient unreachable, ...)
)

// Priority orders delivery: lower goes first. Escalations and alerts are
// never held up behind a burst of check-ins.
func (k Kind) Priority() int {
	switch k {
	case KindEscalation, KindAlert:
		return 0
	case KindReply, KindNotice:
		return 1
	default:
		return 2
	}
}

// Choice is one button offered with a message. Free text works wherever a
// button does; buttons only save typing.
type Choice struct {
	// ID is the stable payload sent back when the button is pressed
	// (at most 64 bytes, ASCII, so it fits Telegram callback data).
	ID string `json:"id"`
	// Label is the text on the button.
	Label string `json:"label"`
}

// StaffAddress is the PatientID used for messages to the clinic's staff.
// The service fans a staff message out to every configured staff channel.
const StaffAddress PatientID = "staff"

// Outbound is one message to deliver. The engine creates them; the store
// keeps them in the outbox until a platform has accepted them.
type Outbound struct {
	// ID is the outbox sequence number, assigned by the store.
	ID uint64 `json:"id,omitempty"`
	// To is the patient, or StaffAddress.
	To PatientID `json:"to"`
	// Channel is the destination for staff messages after fan-out: the
	// platform and address of one staff channel (e.g. "telegram:-100123").
	// Empty for patient messages, which go to To.
	Channel PatientID `json:"channel,omitempty"`
	// Kind says what the message is.
	Kind Kind `json:"kind"`
	// Level is set for escalations and alerts.
	Level Level `json:"level,omitempty"`
	// Patient is the patient an alert or notice is about.
	Patient PatientID `json:"patient,omitempty"`
	// Text is the message body (health data: never log it).
	Text string `json:"text"`
	// Choices are buttons to offer, if any.
	Choices []Choice `json:"choices,omitempty"`
	// Staff names the staff member who wrote a message from the clinic
	// team (a reply from the desk); empty for the bot's own messages.
	Staff string `json:"staff,omitempty"`
	// EscalationID links an alert to its escalation record, so staff can
	// acknowledge it. The engine leaves it 0 on the alert of a new
	// escalation; the service sets it once the store has given the record
	// its ID (service/ladder.go).
	EscalationID uint64 `json:"escalation_id,omitempty"`
	// Private marks a message that only its one recipient may read, such
	// as a desk sign-in link (a credential: whoever reads it first can
	// sign in as the staff member who asked). To and Channel both name
	// that person ("telegram:42", "discord:1234": a user, not a shared
	// chat), and adapters deliver it to that person's own private chat.
	// The dispatcher sends it to Destination alone: it is never fanned out
	// to staff channels, never copied to another staff destination or
	// escalation contact, dropped instead of kept when the person cannot
	// be reached (no patient state is made for them), and, like every
	// text, never logged. It is a typed field so the dispatcher and every
	// adapter decide the same way, never by looking at the text.
	Private bool `json:"private,omitempty"`
	// Origin is, for a private message asked for in a shared staff chat,
	// that chat: once the private delivery succeeded or was refused, the
	// dispatcher tells it so there (never what the message said). Empty
	// when the person asked in their own private chat.
	Origin PatientID `json:"origin,omitempty"`
	// Created is when the message was queued.
	Created Time `json:"created"`
	// Attempts counts failed delivery attempts so far.
	Attempts int `json:"attempts,omitempty"`
	// NotBefore delays a retry after a failure or a platform's retry-after.
	NotBefore Time `json:"not_before,omitzero"`
}

// Destination is where the message actually goes: Channel for staff
// messages, To for patients.
func (m Outbound) Destination() PatientID {
	if m.Channel != "" {
		return m.Channel
	}
	return m.To
}

// String describes the message without its text, for logs.
func (m Outbound) String() string {
	return fmt.Sprintf("outbound{id=%d to=%s kind=%s}", m.ID, m.Destination(), m.Kind)
}
