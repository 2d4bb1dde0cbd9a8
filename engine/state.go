package engine

import (
	"log/slog"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Treatment is the kind of needling session, which changes the advice.
type Treatment string

// The treatments the bot distinguishes.
const (
	Acupuncture        Treatment = "acupuncture"
	Electroacupuncture Treatment = "electroacupuncture"
	DryNeedling        Treatment = "dry_needling"
)

// Valid reports whether t is one of the known treatments.
func (t Treatment) Valid() bool {
	return t == Acupuncture || t == Electroacupuncture || t == DryNeedling
}

// Label is the treatment's human name.
func (t Treatment) Label() string {
	switch t {
	case Electroacupuncture:
		return "electroacupuncture"
	case DryNeedling:
		return "dry needling"
	case Acupuncture:
		return "acupuncture"
	}
	return "treatment"
}

// Visit is one treatment session the patient is followed up after.
type Visit struct {
	// At is when the session took place.
	At time.Time `json:"at"`
	// Treatment is the kind of session.
	Treatment Treatment `json:"treatment"`
	// Area is the treated area, in the clinic's or patient's words.
	Area string `json:"area,omitempty"`
	// Acute is set when an acute injury is being treated.
	Acute bool `json:"acute,omitempty"`
	// Child is set when the patient is a child.
	Child bool `json:"child,omitempty"`
	// AcuteUnknown and ChildUnknown are set when the patient did not know
	// the answer, even when asked again. An unknown acute injury is
	// recorded as acute (Acute is set too), the cautious reading for
	// advice; staff see both as unknown so they can ask.
	AcuteUnknown bool `json:"acute_unknown,omitempty"`
	ChildUnknown bool `json:"child_unknown,omitempty"`
	// TZ is the patient's IANA time zone; empty means the clinic's.
	TZ string `json:"tz,omitempty"`
	// Lang is the language staff recorded for the patient ("es"); it picks
	// the protocol the bot speaks unless the patient asks for another.
	Lang string `json:"lang,omitempty"`
	// Source says who recorded the visit: "clinic" or "patient".
	Source string `json:"source,omitempty"`
	// Consent is set when the clinic recorded, in person, the patient's
	// agreement to automatic check-ins. Otherwise the bot asks first.
	Consent bool `json:"consent,omitempty"`
	// Identity is who the patient is, as the clinic entered it: for staff
	// only (the desk, and in alerts only as Clinic.AlertIdentity allows).
	// Nil when the clinic entered nothing.
	Identity *Identity `json:"identity,omitempty"`
}

// Identity is the staff-only identity the clinic records with a visit, so
// staff know who "telegram:8815..." is. It is personal data: never logged
// (LogValue redacts it), exported with the record, erased with the patient.
type Identity struct {
	// Name is the patient's name as the clinic's records have it.
	Name string `json:"name,omitempty"`
	// Chart is the clinic's chart (medical record) number.
	Chart string `json:"chart,omitempty"`
	// Phone is the patient's phone number.
	Phone string `json:"phone,omitempty"`
}

// Empty reports whether nothing was entered.
func (id *Identity) Empty() bool {
	return id == nil || (id.Name == "" && id.Chart == "" && id.Phone == "")
}

// Initials are the first letters of the name's words, upper case ("J.Q.").
func (id *Identity) Initials() string {
	if id == nil {
		return ""
	}
	var b strings.Builder
	for _, w := range strings.Fields(id.Name) {
		r, _ := utf8.DecodeRuneInString(w)
		if unicode.IsLetter(r) {
			b.WriteRune(unicode.ToUpper(r))
			b.WriteByte('.')
		}
	}
	return b.String()
}

// LogValue keeps the identity out of logs that include a visit or a state.
func (id *Identity) LogValue() slog.Value { return slog.StringValue("[identity redacted]") }

// Clean trims each field, drops control characters and bounds its length,
// and returns nil when nothing is left.
func (id Identity) Clean() *Identity {
	f := func(s string, n int) string {
		s, _ = Sanitize(s)
		return Truncate(strings.TrimSpace(s), n)
	}
	out := &Identity{Name: f(id.Name, 80), Chart: f(id.Chart, 40), Phone: f(id.Phone, 40)}
	if out.Empty() {
		return nil
	}
	return out
}

// State is everything the engine remembers about one patient's
// conversation. The store keeps it; the engine takes it in and hands the
// next one back, so the engine itself holds no state.
type State struct {
	Patient PatientID `json:"patient"`
	// DisplayName is the platform display name, shown to staff only.
	DisplayName string `json:"display_name,omitempty"`
	Visit       *Visit `json:"visit,omitempty"`
	// Draft is a visit being described by the patient during intake.
	Draft *Visit `json:"draft,omitempty"`
	// Step is the open question: StepNone when none, else an intake
	// question, a readiness or check-in question by index, or the erase
	// confirmation (see steps.go).
	Step StepID `json:"step,omitempty"`
	// Then is what to do once intake is finished ("readiness").
	Then string `json:"then,omitempty"`
	// Ready holds readiness answers by question ID.
	Ready map[string]string `json:"ready,omitempty"`
	// Checkins holds the automatic check-ins of the current visit.
	Checkins []Checkin `json:"checkins,omitempty"`
	// EarlierScores keeps the soreness scores of earlier visits' check-ins
	// (at most MaxEarlierScores, the newest), so staff can follow a patient
	// across visits.
	EarlierScores []EarlierScore `json:"earlier_scores,omitempty"`
	// Current is the index in Checkins of the open check-in, or -1.
	Current int `json:"current"`
	// Clarify is a pending clarifying question about a possible red flag.
	Clarify *PendingClarify `json:"clarify,omitempty"`
	// Stopped is set when the patient replied STOP.
	Stopped bool `json:"stopped,omitempty"`
	// Consent is "yes" once the patient agreed to automatic check-ins,
	// "no" when they declined, "" when not asked yet.
	Consent string `json:"consent,omitempty"`
	// Paused is set while staff have paused the patient's check-ins.
	Paused bool `json:"paused,omitempty"`
	// HeldUntil holds automatic follow-ups (check-ins and nudges) while a
	// person at the clinic is talking with the patient: each staff reply
	// moves it to Clinic.StaffHold after the reply. Red-flag triage never
	// waits for it.
	HeldUntil time.Time `json:"held_until,omitzero"`
	// AskedPerson is when the patient last asked for a person ("can I
	// talk to someone?"); StaffReplied when a staff member last wrote to
	// them. The desk lists a patient who asked after the last staff reply
	// as needing a person.
	AskedPerson  time.Time `json:"asked_person,omitzero"`
	StaffReplied time.Time `json:"staff_replied,omitzero"`
	// Unreachable is set when the platform says the patient can no longer be messaged.
	Unreachable bool `json:"unreachable,omitempty"`
	// Escalated is when staff were last alerted about the patient.
	Escalated time.Time `json:"escalated,omitempty"`
	// Silent is when staff were told that the patient answered none of the
	// visit's check-ins; zero when not (a new visit clears it).
	Silent time.Time `json:"silent,omitempty"`
	// Greeted is set once the introduction was sent.
	Greeted bool `json:"greeted,omitempty"`
	// LastActive is when the patient last wrote.
	LastActive time.Time `json:"last_active,omitempty"`
	// Lang is the language the bot speaks with the patient ("en", "es"),
	// settled on the first message and remembered.
	Lang string `json:"lang,omitempty"`
	// LangChosen is set when the patient asked for Lang themselves; only
	// another request changes it then.
	LangChosen bool `json:"lang_chosen,omitempty"`
	// Handled counts the events applied, for the audit trail and tests.
	Handled int `json:"handled"`
}

// EarlierScore is the soreness score a patient gave at a check-in of an
// earlier visit.
type EarlierScore struct {
	// Visit is when that visit's session took place; Hours which check-in.
	Visit    time.Time `json:"visit"`
	Hours    float64   `json:"hours"`
	Soreness int       `json:"soreness"`
}

// MaxEarlierScores bounds State.EarlierScores.
const MaxEarlierScores = 30

// Checkin is one automatic check-in and the patient's answers.
type Checkin struct {
	Hours    float64   `json:"hours"`
	Sent     time.Time `json:"sent"`
	Feel     string    `json:"feel,omitempty"`
	Soreness *int      `json:"soreness,omitempty"`
	Signs    string    `json:"signs,omitempty"`
	// Outcome is "" while open, then "ok", "watch", "urgent", "emergency",
	// "unanswered" or "escalated".
	Outcome string `json:"outcome,omitempty"`
	Nudged  bool   `json:"nudged,omitempty"`
}

// Open reports whether the check-in still waits for answers.
func (c Checkin) Open() bool { return c.Outcome == "" }

// PendingClarify is a clarifying question the patient has not answered yet.
type PendingClarify struct {
	Ask      Clarify   `json:"ask"`
	Signs    []string  `json:"signs,omitempty"`
	Subject  string    `json:"subject,omitempty"`
	Said     string    `json:"said"`
	Fallback Level     `json:"fallback"`
	Asked    time.Time `json:"asked"`
	// Net marks the safety-net question: asked because the message could
	// not be fully accounted for, not because a rule was unsure.
	Net bool `json:"net,omitempty"`
}

// EventKind says what happened to a conversation.
type EventKind string

// Event kinds.
const (
	// EventMessage is a message or button press from the patient.
	EventMessage EventKind = "message"
	// EventVisit is a visit recorded by the clinic for the patient.
	EventVisit EventKind = "visit"
	// EventDue is a timer the engine scheduled earlier coming due.
	EventDue EventKind = "due"
	// EventUnreachable is the platform refusing delivery for good.
	EventUnreachable EventKind = "unreachable"
	// EventStaff is a staff action on the patient: "pause", "resume",
	// "erase", or "reply" (a staff member's message in Text, which holds
	// automatic follow-ups for Clinic.StaffHold).
	EventStaff EventKind = "staff"
)

// Event is one input to the engine.
type Event struct {
	Kind EventKind `json:"kind"`
	// Text and Choice carry a message (EventMessage).
	Text   string `json:"text,omitempty"`
	Choice string `json:"choice,omitempty"`
	// DisplayName is refreshed from the platform with each message.
	DisplayName string `json:"display_name,omitempty"`
	// Lang is the platform's language for the patient (Telegram
	// language_code, Discord locale), a hint when nothing else says.
	Lang string `json:"lang,omitempty"`
	// Visit is the recorded visit (EventVisit).
	Visit *Visit `json:"visit,omitempty"`
	// Timer is the key of the timer that came due (EventDue).
	Timer string `json:"timer,omitempty"`
	// Platform names the platform for EventUnreachable.
	Platform string `json:"platform,omitempty"`
	// Invite is what became of the invite the message presented, if any
	// (the platform adapter found it, the store resolved it); the engine
	// never looks for one in Text.
	Invite InviteResult `json:"invite,omitempty"`
	// Action and Actor describe a staff action (EventStaff).
	Action string `json:"action,omitempty"`
	Actor  string `json:"actor,omitempty"`
}

// Timer asks the scheduler to deliver an EventDue with Key at At. A zero
// At cancels the timer. Keys are per owner; scheduling a key again
// replaces the earlier time. The engine's timers (Result.Timers) are the
// patient's own; the store keeps them under the patient as a typed owner
// (store.Owner), beside the timers the service keeps for an escalation's
// reminder ladder, and neither reads meaning into the other's keys.
type Timer struct {
	Key string    `json:"key"`
	At  time.Time `json:"at"`
}

// Escalation is the durable record of a red flag, open until staff
// acknowledge it.
type Escalation struct {
	ID      uint64    `json:"id"`
	Patient PatientID `json:"patient"`
	Level   Level     `json:"level"`
	Signs   []string  `json:"signs"`
	Subject string    `json:"subject,omitempty"`
	// Said is what the patient wrote (truncated). Health data.
	Said string `json:"said"`
	// Visit summarises the treatment, area and time since the session.
	Visit string    `json:"visit"`
	At    time.Time `json:"at"`
	// Status is "open", "acknowledged" or "resolved".
	Status string `json:"status"`
	Note   string `json:"note,omitempty"`
	// AckBy and AckAt record who acknowledged the alert and when;
	// ResolvedBy and ResolvedAt who closed it.
	AckBy      string    `json:"ack_by,omitempty"`
	AckAt      time.Time `json:"ack_at,omitzero"`
	ResolvedBy string    `json:"resolved_by,omitempty"`
	ResolvedAt time.Time `json:"resolved_at,omitzero"`
	// Steps counts the reminders and forwards sent while unacknowledged.
	Steps int `json:"steps,omitempty"`
}

// Audit is one line of the audit trail: who did what, when. It never holds
// message bodies.
type Audit struct {
	At      time.Time `json:"at"`
	Actor   string    `json:"actor"`
	Action  string    `json:"action"`
	Patient PatientID `json:"patient,omitempty"`
	Detail  string    `json:"detail,omitempty"`
}

// Result is what one engine step asks the outside world to make durable,
// all together in one transaction: the next state, the messages to send,
// timer changes, at most one escalation record, and audit lines.
type Result struct {
	State    State
	Messages []Outbound
	Timers   []Timer
	// Escalation, when set, is a new escalation record; the store gives it
	// its ID. What goes with it beyond the engine's alert (the alert's
	// Acknowledge button, the reminder ladder) is the service's
	// (service/ladder.go).
	Escalation *Escalation
	Audit      []Audit
	// InviteUsed asks the store to mark the presented invite as used.
	InviteUsed bool
	// VisitRecorded asks the store to add State.Visit to the patient's
	// visit history: the step recorded a new visit.
	VisitRecorded bool
	// Erase asks the store to delete everything about the patient (state,
	// timers, visits, escalations, audit lines, queued messages) before
	// committing this step's messages, leaving one anonymous audit line.
	Erase bool
}

// Invite is a one-time enrollment link the clinic hands a patient after a
// session. The token says nothing about the patient.
type Invite struct {
	Token   string    `json:"token"`
	Visit   Visit     `json:"visit"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	// UsedBy and UsedAt are set when a patient opened the invite.
	UsedBy PatientID `json:"used_by,omitempty"`
	UsedAt time.Time `json:"used_at,omitzero"`
}

// InviteStatus is what became of an invite a patient presented.
type InviteStatus string

// Invite statuses.
const (
	InviteOK      InviteStatus = "ok"
	InviteUnknown InviteStatus = "unknown"
	InviteExpired InviteStatus = "expired"
	InviteUsed    InviteStatus = "used"
)

// InviteResult is a resolved invite, passed in with the message that presented it.
type InviteResult struct {
	Status InviteStatus `json:"status,omitempty"`
	// Visit is the clinic's visit when Status is InviteOK.
	Visit *Visit `json:"visit,omitempty"`
}
