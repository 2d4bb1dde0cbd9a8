package engine

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"
)

// Engine is the conversation state machine. It is pure: Step reads only its
// arguments and the Engine's read-only configuration, does no I/O, and
// returns everything to be done as data. An Engine is safe for concurrent
// use; callers must serialise steps for one patient themselves, because
// each step consumes the state the previous one returned.
type Engine struct {
	// protocol is the clinic's language: staff texts, and patients with no
	// other language; langs holds every loaded language by code.
	protocol *Protocol
	langs    map[string]*Protocol
	triage   Triager
	clinic   Clinic
	clinicTZ *time.Location
	zones    sync.Map // IANA name -> *time.Location; a cache of tzdata reads
	// vars fills the clinic's placeholders in protocol texts; built once,
	// since a strings.Replacer is costly to build and safe to share.
	vars *strings.Replacer
	// filled maps every protocol string that has a placeholder to the
	// string with vars filled in: protocols and the clinic never change
	// after New, so a step looks a text up instead of running the
	// replacer over it each time.
	filled map[string]string
}

// New returns an engine for the protocol, triage and clinic; more adds
// protocols in other languages, one per language code. p's language is the
// clinic's: staff alerts use it, and so do patients with no other. It fails
// when the clinic's time zone is unknown or two protocols share a language.
func New(p *Protocol, t Triager, c Clinic, more ...*Protocol) (*Engine, error) {
	if p == nil || t == nil {
		return nil, fmt.Errorf("engine: protocol and triage are required")
	}
	if c.EmergencyNumber == "" {
		c.EmergencyNumber = "911"
	}
	switch c.AlertIdentity {
	case AlertIdentityNone, AlertIdentityChart, AlertIdentityInitials:
	default:
		return nil, fmt.Errorf("engine: alert identity %q: use \"\", %q or %q", c.AlertIdentity, AlertIdentityChart, AlertIdentityInitials)
	}
	loc, err := time.LoadLocation(c.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("engine: clinic time zone %q: %w", c.TimeZone, err)
	}
	langs := map[string]*Protocol{}
	for _, q := range append([]*Protocol{p}, more...) {
		if q == nil {
			return nil, fmt.Errorf("engine: nil protocol")
		}
		if q.phrases == nil {
			q.index() // built in code rather than loaded: index it once here
		}
		lang := q.lang()
		if _, dup := langs[lang]; dup {
			return nil, fmt.Errorf("engine: two protocols for language %q", lang)
		}
		langs[lang] = q
	}
	vars := strings.NewReplacer("{clinic}", c.Name, "{clinic_phone}", c.Phone, "{emergency_number}", c.EmergencyNumber)
	filled := map[string]string{}
	for _, q := range langs {
		eachString(reflect.ValueOf(q).Elem(), func(s string) {
			if strings.IndexByte(s, '{') >= 0 {
				filled[s] = vars.Replace(s)
			}
		})
	}
	return &Engine{protocol: p, langs: langs, triage: t, clinic: c, clinicTZ: loc, vars: vars, filled: filled}, nil
}

// Protocol returns the engine's protocol in the clinic's language.
func (e *Engine) Protocol() *Protocol { return e.protocol }

// Languages lists the language codes the engine speaks, the clinic's first.
func (e *Engine) Languages() []string {
	out := []string{e.protocol.lang()}
	for l := range e.langs {
		if l != out[0] {
			out = append(out, l)
		}
	}
	slices.Sort(out[1:])
	return out
}

// Clinic returns the engine's clinic settings.
func (e *Engine) Clinic() Clinic { return e.clinic }

// step accumulates one step's output.
type step struct {
	e   *Engine
	p   *Protocol // the patient's language
	now time.Time
	st  State
	res Result
}

// Step applies one event to a patient's state at time now and returns the
// next state with the effects it causes. A zero State (Patient empty) is a
// new conversation; Step fills Patient from id.
func (e *Engine) Step(id PatientID, st State, ev Event, now time.Time) Result {
	if st.Patient == "" {
		st = State{Patient: id, Current: -1}
	}
	st.Handled++
	s := &step{e: e, now: now, st: st}
	s.chooseLanguage(ev)
	switch ev.Kind {
	case EventMessage:
		if name, _ := Sanitize(ev.DisplayName); name != "" {
			// Sanitized like message text: a name is the patient's text too.
			s.st.DisplayName = Truncate(name, 64)
		}
		if ev.Invite.Status != "" {
			s.invite(ev.Invite)
			break
		}
		s.message(ev.Text, ev.Choice)
	case EventVisit:
		s.visit(ev.Visit)
	case EventDue:
		s.due(ev.Timer)
	case EventUnreachable:
		s.unreachable(ev.Platform)
	case EventStaff:
		s.staff(ev.Action, ev.Actor, ev.Text)
	default:
		s.audit("ignored", fmt.Sprintf("unknown event kind %q", ev.Kind))
	}
	s.res.State = s.st
	return s.res
}

// ---- output helpers ----

// fill fills the clinic's placeholders in t.
func (s *step) fill(t string) string { return s.e.fill(t) }

func (s *step) text(key string) string { return s.e.fill(s.p.Texts[key]) }

// fill returns t with the clinic's placeholders filled in: t itself when it
// has none, the string prepared in New for a protocol text, and the
// replacer's work only for text put together during the step.
func (e *Engine) fill(t string) string {
	if strings.IndexByte(t, '{') < 0 {
		return t
	}
	if f, ok := e.filled[t]; ok {
		return f
	}
	return e.vars.Replace(t)
}

// eachString calls fn with every string reachable from v through exported
// fields, slices and maps (keys and values): the protocol's data, not its
// indexes.
func eachString(v reflect.Value, fn func(string)) {
	switch v.Kind() {
	case reflect.String:
		fn(v.String())
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			eachString(v.Elem(), fn)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				eachString(v.Field(i), fn)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			eachString(v.Index(i), fn)
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			eachString(it.Key(), fn)
			eachString(it.Value(), fn)
		}
	}
}

func (s *step) send(kind Kind, text string, choices []Choice) {
	s.sendLevel(kind, None, text, choices)
}

func (s *step) sendLevel(kind Kind, l Level, text string, choices []Choice) {
	if s.st.Unreachable && kind != KindEscalation {
		// Nothing reaches the patient; escalations are still attempted.
		return
	}
	s.res.Messages = append(s.res.Messages, Outbound{
		To: s.st.Patient, Kind: kind, Level: l, Text: Truncate(strings.TrimSpace(text), MaxOutputRunes),
		Choices: choices, Created: s.now,
	})
}

// reply joins parts into one message.
func (s *step) reply(parts ...string) {
	var keep []string
	for _, p := range parts {
		if strings.TrimSpace(p) != "" {
			keep = append(keep, p)
		}
	}
	s.send(KindReply, strings.Join(keep, "\n\n"), nil)
}

func (s *step) audit(action, detail string) {
	s.res.Audit = append(s.res.Audit, Audit{At: s.now, Actor: "engine", Action: action, Patient: s.st.Patient, Detail: detail})
}

// hours is the time since the session, or -1 without a visit.
func (s *step) hours() float64 {
	if s.st.Visit == nil {
		return -1
	}
	return s.now.Sub(s.st.Visit.At).Hours()
}

// choices turns a question's choices into buttons.
func choices(q Question) []Choice {
	out := make([]Choice, len(q.Choices))
	for i, c := range q.Choices {
		out[i] = Choice{ID: c.ID, Label: c.Label}
	}
	return out
}

// ---- quiet hours ----

// ---- visits and timers ----

// ---- escalation ----

// ---- clarifying questions ----

// staff applies a staff action to the patient.
func (s *step) staff(action, actor, text string) {
	switch action {
	case "pause":
		s.st.Paused = true
	case "resume":
		s.st.Paused = false
		s.scheduleCheckins()
	case "erase":
		// Staff erase the patient's data (the desk's Erase, confirmed):
		// everything goes, the state too (an empty Patient tells the
		// store to keep none), and the audit line naming who erased is
		// kept without the patient ID.
		s.res.Erase = true
		s.st = State{}
	case "reply":
		s.staffReply(text, actor)
		return
	default:
		s.audit("ignored", "unknown staff action "+action)
		return
	}
	s.res.Audit = append(s.res.Audit, Audit{At: s.now, Actor: actor, Action: action, Patient: s.st.Patient})
}

// staffReply sends a staff member's message to the patient and holds the
// automatic follow-ups while the person is talking with them: a check-in
// or nudge falling due before HeldUntil waits until then (see hold). It
// audits "staff_reply" with the staff member's name, never the text.
func (s *step) staffReply(text, actor string) {
	if strings.TrimSpace(text) == "" || actor == "" {
		s.audit("ignored", "staff reply without text or staff member")
		return
	}
	if hold := s.e.clinic.staffHold(); hold > 0 {
		s.st.HeldUntil = s.now.Add(hold)
	}
	s.st.StaffReplied = s.now
	if s.st.Unreachable {
		s.res.Audit = append(s.res.Audit, Audit{At: s.now, Actor: actor, Action: "staff_reply", Patient: s.st.Patient, Detail: "not sent: the patient is unreachable"})
		return
	}
	s.res.Messages = append(s.res.Messages, Outbound{
		To: s.st.Patient, Kind: KindReply, Text: Truncate(strings.TrimSpace(text), MaxOutputRunes), Staff: actor, Created: s.now,
	})
	s.res.Audit = append(s.res.Audit, Audit{At: s.now, Actor: actor, Action: "staff_reply", Patient: s.st.Patient, Detail: "message from the clinic team queued"})
}

// held defers the automatic follow-up timer key while staff are talking
// with the patient and reports whether it did.
func (s *step) held(key string) bool {
	if !s.now.Before(s.st.HeldUntil) {
		return false
	}
	s.timer(key, s.allowed(s.st.HeldUntil))
	s.audit("followup_held", key+": a person at the clinic is talking with the patient")
	return true
}
