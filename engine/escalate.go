package engine

import (
	"fmt"
	"strings"
)

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
	body = s.fill(strings.ReplaceAll(body, "{after_hours}", afterHours))
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
		switch {
		case v.AcuteUnknown:
			visit += ", acute injury: unknown"
		case v.Acute:
			visit += ", acute injury"
		}
		switch {
		case v.ChildUnknown:
			visit += ", child: unknown"
		case v.Child:
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
	said = Truncate(said, 300)
	tmpl := p.Alert
	if said == "" {
		// Nothing the patient said to quote (a report on silence).
		tmpl = strings.Replace(tmpl, ` Said: "{said}"`, "", 1)
	}
	alert := strings.NewReplacer("{level}", strings.ToUpper(l.String()), "{patient}", string(s.st.Patient)+s.alertIdentity(), "{name}", s.quotedName(),
		"{visit}", visit, "{signs}", strings.Join(signs, ", "), "{subject}", subj, "{said}", StaffQuote(said)).Replace(tmpl)
	s.res.Messages = append(s.res.Messages, Outbound{
		To: StaffAddress, Kind: KindAlert, Level: l, Patient: s.st.Patient, Text: Truncate(alert, MaxOutputRunes), Created: s.now,
	})
	s.st.Escalated = s.now
	s.res.Escalation = &Escalation{Patient: s.st.Patient, Level: l, Signs: signs, Subject: subject, Said: said, Visit: visit, At: s.now, Status: "open"}
	s.audit("escalation", l.String()+": "+strings.Join(signs, ","))
}

// abortFlow drops the open question after an urgent escalation: the patient
// has more important things to do than answer a questionnaire.
func (s *step) abortFlow(outcome string) {
	if i := s.st.Current; i >= 0 && i < len(s.st.Checkins) && s.st.Checkins[i].Open() {
		s.st.Checkins[i].Outcome = outcome
	}
	s.st.Step = StepNone
	s.st.Then = ""
	s.st.Ready = nil
	s.st.Clarify = nil
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
	return string(s.st.Patient) + s.alertIdentity() + s.quotedName()
}

// alertIdentity is what staff messages in chat show of the identity the
// clinic entered, as Clinic.AlertIdentity says: " (chart 12345)",
// " (J.Q.)", or "" (the default: chat histories are kept on the chat
// platform's servers, so nothing more than the patient ID goes there
// unless the clinic chooses).
func (s *step) alertIdentity() string {
	if s.st.Visit == nil || s.st.Visit.Identity.Empty() {
		return ""
	}
	id := s.st.Visit.Identity
	switch s.e.clinic.AlertIdentity {
	case AlertIdentityChart:
		if c := StaffQuote(id.Chart); c != "" {
			return " (chart " + c + ")"
		}
	case AlertIdentityInitials:
		if i := id.Initials(); i != "" {
			return " (" + StaffQuote(i) + ")"
		}
	}
	return ""
}

// quotedName is the patient's display name as staff see it, quoted, or "".
func (s *step) quotedName() string {
	if s.st.DisplayName != "" {
		return " (\"" + StaffQuote(s.st.DisplayName) + "\")"
	}
	return ""
}
