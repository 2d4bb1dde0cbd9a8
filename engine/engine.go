package engine

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Clinic holds the contact details and policies the conversation quotes.
// It comes from configuration.
type Clinic struct {
	// Name is how the bot names the clinic.
	Name string
	// Phone is the clinic's number, quoted in every escalation.
	Phone string
	// EmergencyNumber is the local emergency number (default 911).
	EmergencyNumber string
	// TimeZone is the clinic's IANA zone, the default for patients.
	TimeZone string
	// QuietStart and QuietEnd bound the quiet hours in minutes after
	// local midnight (21:00 = 1260, 08:00 = 480). Check-ins and nudges
	// falling inside are moved to QuietEnd; escalations ignore them.
	// Equal values disable quiet hours.
	QuietStart, QuietEnd int
	// Hours are the opening hours per weekday, in minutes after local
	// midnight ([open, close)); a day without an entry is closed. When Hours
	// is nil the clinic is treated as always open.
	Hours map[time.Weekday][2]int
	// AfterHoursPhone is told to patients outside opening hours, if set.
	AfterHoursPhone string
}

// Open reports whether the clinic is open at t.
func (c Clinic) Open(t time.Time, loc *time.Location) bool {
	if c.Hours == nil {
		return true
	}
	lt := t.In(loc)
	h, ok := c.Hours[lt.Weekday()]
	m := lt.Hour()*60 + lt.Minute()
	return ok && m >= h[0] && m < h[1]
}

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
	return &Engine{protocol: p, langs: langs, triage: t, clinic: c, clinicTZ: loc, vars: vars}, nil
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
			s.st.DisplayName = truncate(name, 64)
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
		s.staff(ev.Action, ev.Actor)
	default:
		s.audit("ignored", fmt.Sprintf("unknown event kind %q", ev.Kind))
	}
	s.res.State = s.st
	return s.res
}

// ---- output helpers ----

func (s *step) vars() *strings.Replacer { return s.e.vars }

func (s *step) text(key string) string { return s.vars().Replace(s.p.Texts[key]) }

func (s *step) send(kind Kind, text string, choices []Choice) {
	s.sendLevel(kind, None, text, choices)
}

func (s *step) sendLevel(kind Kind, l Level, text string, choices []Choice) {
	if s.st.Unreachable && kind != KindEscalation {
		// Nothing reaches the patient; escalations are still attempted.
		return
	}
	s.res.Messages = append(s.res.Messages, Outbound{
		To: s.st.Patient, Kind: kind, Level: l, Text: truncate(strings.TrimSpace(text), MaxOutputRunes),
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

func (s *step) timer(key string, at time.Time) {
	s.res.Timers = append(s.res.Timers, Timer{Key: key, At: at})
}

func (s *step) audit(action, detail string) {
	s.res.Audit = append(s.res.Audit, Audit{At: s.now, Actor: "engine", Action: action, Patient: s.st.Patient, Detail: detail})
}

func (s *step) loc() *time.Location {
	if s.st.Visit != nil && s.st.Visit.TZ != "" {
		return s.e.zone(s.st.Visit.TZ)
	}
	return s.e.clinicTZ
}

func (e *Engine) zone(name string) *time.Location {
	if v, ok := e.zones.Load(name); ok {
		return v.(*time.Location)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		loc = e.clinicTZ
	}
	e.zones.Store(name, loc)
	return loc
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

// Allowed returns t, or the end of the quiet hours when t falls inside
// them, in loc. Computing the end with time.Date keeps it right across a
// daylight-saving change.
func (c Clinic) Allowed(t time.Time, loc *time.Location) time.Time {
	if c.QuietStart == c.QuietEnd {
		return t
	}
	lt := t.In(loc)
	m := lt.Hour()*60 + lt.Minute()
	var quiet bool
	if c.QuietStart > c.QuietEnd {
		quiet = m >= c.QuietStart || m < c.QuietEnd
	} else {
		quiet = m >= c.QuietStart && m < c.QuietEnd
	}
	if !quiet {
		return t
	}
	day := lt
	if c.QuietStart > c.QuietEnd && m >= c.QuietStart {
		day = lt.AddDate(0, 0, 1)
	}
	return time.Date(day.Year(), day.Month(), day.Day(), c.QuietEnd/60, c.QuietEnd%60, 0, 0, loc)
}

func (s *step) allowed(t time.Time) time.Time { return s.e.clinic.Allowed(t, s.loc()) }

// ---- visits and timers ----

func checkinKey(h float64) string { return "checkin:" + strconv.FormatFloat(h, 'f', -1, 64) }
func nudgeKey(h float64) string   { return "nudge:" + strconv.FormatFloat(h, 'f', -1, 64) }

// visit records a visit from the clinic.
func (s *step) visit(v *Visit) {
	if v == nil || !v.Treatment.Valid() {
		s.audit("visit_rejected", "missing or unknown treatment")
		return
	}
	vv := *v
	if vv.Source == "" {
		vv.Source = "clinic"
	}
	s.setVisit(&vv)
	s.audit("visit_recorded", string(vv.Treatment))
	if s.st.Greeted {
		s.reply(s.checkinTimesText("intake_done"))
	}
}

// setVisit makes v the current visit and (re)schedules its check-ins.
func (s *step) setVisit(v *Visit) {
	for _, c := range s.st.Checkins {
		s.timer(checkinKey(c.Hours), time.Time{})
		s.timer(nudgeKey(c.Hours), time.Time{})
	}
	s.timer(silentKey, time.Time{})
	s.st.Silent = time.Time{}
	s.st.Visit = v
	s.st.Draft = nil
	s.st.Checkins = nil
	s.st.Current = -1
	if v.Consent && s.st.Consent == "" {
		s.st.Consent = "yes"
	}
	s.scheduleCheckins()
}

// scheduleCheckins (re)schedules the visit's check-ins still to come, once
// the patient agreed to them. Keys are fixed per check-in, so scheduling
// again only moves a timer, never doubles it.
func (s *step) scheduleCheckins() {
	v := s.st.Visit
	if v == nil || s.st.Consent != "yes" {
		return
	}
	for _, h := range s.p.Timing.CheckinsHours {
		due := v.At.Add(time.Duration(h * float64(time.Hour)))
		if due.Before(s.now) {
			continue // the session is older than this check-in
		}
		sent := false
		for _, c := range s.st.Checkins {
			sent = sent || c.Hours == h
		}
		if !sent {
			s.timer(checkinKey(h), s.allowed(due))
		}
	}
}

// upcoming lists the check-in times still to come, in the patient's zone.
func (s *step) upcoming() []time.Time {
	var out []time.Time
	if s.st.Visit == nil {
		return nil
	}
	for _, h := range s.p.Timing.CheckinsHours {
		due := s.st.Visit.At.Add(time.Duration(h * float64(time.Hour)))
		if due.Before(s.now) {
			continue
		}
		done := false
		for _, c := range s.st.Checkins {
			if c.Hours == h {
				done = true
			}
		}
		if !done {
			out = append(out, s.allowed(due))
		}
	}
	return out
}

func (s *step) checkinTimesText(key string) string {
	ts := s.upcoming()
	if len(ts) == 0 || s.st.Stopped || s.st.Consent != "yes" {
		return s.text("intake_done_no_checkins")
	}
	return strings.ReplaceAll(s.text(key), "{checkin_times}", s.joinTimes(ts))
}

func (s *step) due(key string) {
	switch {
	case strings.HasPrefix(key, "checkin:"):
		h, err := strconv.ParseFloat(strings.TrimPrefix(key, "checkin:"), 64)
		if err != nil {
			s.audit("ignored", "bad timer "+key)
			return
		}
		s.checkinDue(h)
	case strings.HasPrefix(key, "nudge:"):
		h, _ := strconv.ParseFloat(strings.TrimPrefix(key, "nudge:"), 64)
		s.nudgeDue(h)
	case key == "clarify":
		s.clarifyDue()
	case key == silentKey:
		s.silentDue()
	default:
		s.audit("ignored", "unknown timer "+key)
	}
}

func (s *step) checkinDue(h float64) {
	if s.st.Visit == nil {
		s.audit("checkin_skipped", "no visit")
		return
	}
	if s.st.Stopped || s.st.Unreachable || s.st.Paused || s.st.Consent != "yes" {
		s.audit("checkin_skipped", fmt.Sprintf("%vh: stopped, paused, unreachable or no consent", h))
		return
	}
	for _, c := range s.st.Checkins {
		if c.Hours == h {
			s.audit("checkin_skipped", fmt.Sprintf("%vh: already sent", h))
			return
		}
	}
	if at := s.allowed(s.now); at.After(s.now) {
		s.timer(checkinKey(h), at)
		s.audit("checkin_deferred", fmt.Sprintf("%vh: quiet hours", h))
		return
	}
	// Don't cut into a conversation the patient is in the middle of.
	if s.st.Step != "" && !strings.HasPrefix(s.st.Step, "checkin.") && s.now.Sub(s.st.LastActive) < 10*time.Minute {
		s.timer(checkinKey(h), s.now.Add(15*time.Minute))
		s.audit("checkin_deferred", fmt.Sprintf("%vh: patient mid-conversation", h))
		return
	}
	var prefix []string
	if s.st.Current >= 0 && s.st.Current < len(s.st.Checkins) && s.st.Checkins[s.st.Current].Open() {
		s.st.Checkins[s.st.Current].Outcome = "unanswered"
		prefix = append(prefix, s.text("checkin_superseded"))
		s.audit("checkin_unanswered", fmt.Sprintf("%vh", s.st.Checkins[s.st.Current].Hours))
	}
	due := s.st.Visit.At.Add(time.Duration(h * float64(time.Hour)))
	if s.now.Sub(due) > 2*time.Hour && s.now.Sub(s.allowed(due)) > 2*time.Hour {
		prefix = append(prefix, s.text("checkin_late"))
	}
	s.st.Checkins = append(s.st.Checkins, Checkin{Hours: h, Sent: s.now})
	s.st.Current = len(s.st.Checkins) - 1
	s.st.Clarify = nil
	intro := s.p.Checkin.Intro24
	if h >= 36 {
		intro = s.p.Checkin.Intro48
	}
	q := s.p.Checkin.Questions[0]
	s.st.Step = "checkin.0"
	if !s.st.Greeted {
		// The first message a clinic-enrolled patient gets says who is
		// writing, that this is no emergency service, and how to stop.
		s.st.Greeted = true
		prefix = append([]string{s.text("greeting")}, prefix...)
	}
	s.send(KindCheckin, strings.Join(append(prefix, s.vars().Replace(intro), q.Text), "\n\n"), choices(q))
	s.audit("checkin_sent", fmt.Sprintf("%vh", h))
	if n := s.p.Timing.NudgeAfterHours; n > 0 {
		s.timer(nudgeKey(h), s.allowed(s.now.Add(time.Duration(n*float64(time.Hour)))))
	}
	hs := s.e.protocol.Timing.CheckinsHours
	if n := s.e.protocol.Timing.SilentAfterHours; n > 0 && len(hs) > 0 && h == hs[len(hs)-1] {
		s.timer(silentKey, s.silentAt(s.now))
	}
}

func (s *step) nudgeDue(h float64) {
	i := s.st.Current
	if i < 0 || i >= len(s.st.Checkins) || s.st.Checkins[i].Hours != h || !s.st.Checkins[i].Open() || s.st.Stopped {
		return
	}
	if at := s.allowed(s.now); at.After(s.now) {
		s.timer(nudgeKey(h), at)
		return
	}
	if s.st.Checkins[i].Nudged {
		return
	}
	s.st.Checkins[i].Nudged = true
	q, ok := s.question(s.st.Step)
	if !ok {
		return
	}
	s.send(KindNudge, s.text("nudge")+"\n\n"+q.Text, choices(q))
	s.audit("checkin_nudged", fmt.Sprintf("%vh", h))
}

func (s *step) unreachable(platform string) {
	if s.st.Unreachable {
		return
	}
	s.st.Unreachable = true
	t := strings.NewReplacer("{patient}", s.patientLabel(), "{platform}", platform).Replace(s.staffText("unreachable_notice"))
	s.res.Messages = append(s.res.Messages, Outbound{To: StaffAddress, Kind: KindNotice, Patient: s.st.Patient, Text: t, Created: s.now})
	s.audit("unreachable", platform)
}

func (s *step) patientLabel() string {
	return string(s.st.Patient) + s.quotedName()
}

// quotedName is the patient's display name as staff see it, quoted, or "".
func (s *step) quotedName() string {
	if s.st.DisplayName != "" {
		return " (\"" + StaffQuote(s.st.DisplayName) + "\")"
	}
	return ""
}

// ---- escalation ----

// escalate tells the patient what to do now, alerts staff and records the
// escalation, all in this step.
func (s *step) escalate(l Level, signs []string, subject, said, note string) {
	if l < Watch {
		return
	}
	p := s.p.Escalation
	var body string
	open := s.e.clinic.Open(s.now, s.e.clinicTZ)
	switch {
	case l == Emergency:
		body = p.Emergency
	case l == Urgent && open:
		body = p.Urgent
	case l == Urgent:
		body = p.UrgentClosed
	case open:
		body = p.Watch
	default:
		body = p.WatchClosed
	}
	afterHours := s.text("after_hours")
	if s.e.clinic.AfterHoursPhone != "" {
		afterHours = strings.ReplaceAll(s.text("after_hours_line"), "{after_hours_phone}", s.e.clinic.AfterHoursPhone)
	}
	body = s.vars().Replace(strings.ReplaceAll(body, "{after_hours}", afterHours))
	if subject == "child" || (s.st.Visit != nil && s.st.Visit.Child) {
		body += "\n\n" + s.text("child_note")
	}
	s.sendLevel(KindEscalation, l, body, nil)
	s.alertStaff(l, signs, subject, said, note)
}

// alertStaff alerts the clinic team and records the escalation, without a
// message to the patient (escalate sends that first).
func (s *step) alertStaff(l Level, signs []string, subject, said, note string) {
	p := s.e.protocol.Escalation // staff read the clinic's language
	if len(signs) == 0 {
		signs = []string{"unspecified"}
	}
	visit := "no visit on record"
	if v := s.st.Visit; v != nil {
		area := StaffQuote(v.Area)
		if area == "" {
			area = "area not given"
		}
		visit = fmt.Sprintf("%s, %s, %s since session", v.Treatment.Label(), area, fmtHours(s.hours()))
		if v.Acute {
			visit += ", acute injury"
		}
		if v.Child {
			visit += ", child"
		}
	}
	subj := ""
	switch subject {
	case "child":
		subj = " About the patient's child."
	case "other":
		subj = " About someone else."
	}
	if note != "" {
		subj += " " + note
	}
	said = truncate(said, 300)
	tmpl := p.Alert
	if said == "" {
		// Nothing the patient said to quote (a report on silence).
		tmpl = strings.Replace(tmpl, ` Said: "{said}"`, "", 1)
	}
	alert := strings.NewReplacer("{level}", strings.ToUpper(l.String()), "{patient}", string(s.st.Patient), "{name}", s.quotedName(),
		"{visit}", visit, "{signs}", strings.Join(signs, ", "), "{subject}", subj, "{said}", StaffQuote(said)).Replace(tmpl)
	s.res.Messages = append(s.res.Messages, Outbound{
		To: StaffAddress, Kind: KindAlert, Level: l, Patient: s.st.Patient, Text: truncate(alert, MaxOutputRunes), Created: s.now,
	})
	s.st.Escalated = s.now
	s.res.Escalation = &Escalation{Patient: s.st.Patient, Level: l, Signs: signs, Subject: subject, Said: said, Visit: visit, At: s.now, Status: "open"}
	s.audit("escalation", l.String()+": "+strings.Join(signs, ","))
}

func fmtHours(h float64) string {
	if h < 0 {
		return "unknown time"
	}
	if h < 1 {
		return fmt.Sprintf("%d min", int(math.Round(h*60)))
	}
	return fmt.Sprintf("%d h", int(math.Round(h)))
}

// abortFlow drops the open question after an urgent escalation: the patient
// has more important things to do than answer a questionnaire.
func (s *step) abortFlow(outcome string) {
	if i := s.st.Current; i >= 0 && i < len(s.st.Checkins) && s.st.Checkins[i].Open() {
		s.st.Checkins[i].Outcome = outcome
	}
	s.st.Step = ""
	s.st.Then = ""
	s.st.Ready = nil
	s.st.Clarify = nil
}

// ---- clarifying questions ----

func (s *step) startClarify(f Finding, said string) {
	s.st.Clarify = &PendingClarify{Ask: *f.Ask, Signs: f.Signs, Subject: f.Subject, Said: truncate(said, 300), Fallback: f.Level, Asked: s.now}
	cs := make([]Choice, len(f.Ask.Choices))
	for i, c := range f.Ask.Choices {
		cs[i] = Choice{ID: "clarify:" + c.ID, Label: c.Label}
	}
	s.send(KindReply, f.Ask.Text, cs)
	s.timer("clarify", s.now.Add(time.Duration(s.p.Timing.ClarifyTimeoutMinutes*float64(time.Minute))))
	s.audit("clarify_asked", strings.Join(f.Signs, ","))
}

// answerClarify returns the choice picked for the pending clarifying
// question, and the level it implies.
func (s *step) answerClarify(n, choice string) (string, Level, bool) {
	c := s.st.Clarify
	id := strings.TrimPrefix(choice, "clarify:")
	for _, ch := range c.Ask.Choices {
		if choice != "" && ch.ID == id {
			return ch.ID, ch.Level, true
		}
	}
	if choice != "" {
		return "", None, false
	}
	best, bestLen, tie := -1, 0, false
	for i, ch := range c.Ask.Choices {
		l := phraseScore(n, []string{ch.Label, ch.ID}, s.p)
		if c.Net {
			l = max(l, phraseScore(n, s.p.Words.Net[ch.ID], s.p))
		}
		if l > bestLen {
			best, bestLen, tie = i, l, false
		} else if l == bestLen && l > 0 {
			tie = true
		}
	}
	if best >= 0 && !tie {
		return c.Ask.Choices[best].ID, c.Ask.Choices[best].Level, true
	}
	return "", None, false
}

func (s *step) resolveClarify(id string, l Level) {
	c := s.st.Clarify
	s.st.Clarify = nil
	s.timer("clarify", time.Time{})
	switch {
	case c.Net && l < Watch:
		s.netAnswered(id)
	case l >= Watch:
		s.escalate(l, c.Signs, c.Subject, c.Said, "")
		if l >= Urgent {
			s.abortFlow("escalated")
			return
		}
	default:
		s.reassure(c.Signs)
	}
	s.reask("")
}

func (s *step) clarifyDue() {
	c := s.st.Clarify
	if c == nil {
		return
	}
	s.st.Clarify = nil
	note := s.vars().Replace(strings.ReplaceAll(s.staffText("clarify_timeout_alert"), "{patient}", s.staffText("the_patient")))
	switch {
	case c.Net && c.Fallback >= Watch:
		// The patient already has the numbers from the safety net; the
		// team now needs to look.
		s.alertStaff(c.Fallback, c.Signs, c.Subject, c.Said, s.staffText("safety_net_timeout_note"))
	case c.Fallback >= Watch:
		s.escalate(c.Fallback, c.Signs, c.Subject, c.Said, note)
	case c.Net:
		// Nothing hinted at a red flag, but nobody has read the message
		// yet: a person follows up.
		s.alertStaff(Watch, c.Signs, c.Subject, c.Said, s.staffText("safety_net_timeout_note"))
	}
	s.audit("clarify_timeout", c.Fallback.String())
}

// reassure answers a normal after-effect with its care tip.
func (s *step) reassure(signs []string) {
	tip := ""
	for _, sg := range signs {
		if t, ok := s.p.AfterEffects[sg]; ok {
			tip = t
			break
		}
	}
	if tip == "" {
		tip = s.p.AfterEffects["default"]
	}
	s.reply(s.vars().Replace(tip))
}

// invite links the patient to the clinic's visit from a deep link, or says
// politely that the link did not work.
func (s *step) invite(r InviteResult) {
	s.st.LastActive = s.now
	var prefix []string
	if !s.st.Greeted {
		s.st.Greeted = true
		prefix = append(prefix, s.text("greeting"))
	}
	if r.Status != InviteOK || r.Visit == nil {
		s.audit("invite_rejected", string(r.Status))
		s.reply(append(prefix, s.text("invite_unknown"))...)
		if s.st.Visit == nil && s.st.Draft == nil {
			s.startIntake(nil)
		}
		return
	}
	v := *r.Visit
	v.Source = "clinic"
	s.st.Stopped = false
	s.st.Step = ""
	s.setVisit(&v)
	s.res.InviteUsed = true
	s.audit("visit_recorded", "invite: "+string(v.Treatment))
	if s.st.Consent != "yes" {
		s.flush(prefix)
		s.ask("intake.consent", KindReply)
		return
	}
	s.reply(append(prefix, s.checkinTimesText("intake_done"))...)
}

// staff applies a staff action to the patient.
func (s *step) staff(action, actor string) {
	switch action {
	case "pause":
		s.st.Paused = true
	case "resume":
		s.st.Paused = false
		s.scheduleCheckins()
	default:
		s.audit("ignored", "unknown staff action "+action)
		return
	}
	s.res.Audit = append(s.res.Audit, Audit{At: s.now, Actor: actor, Action: action, Patient: s.st.Patient})
}
