package engine

import (
	"strings"
	"time"
)

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
	s.st.Step = StepNone
	s.setVisit(&v)
	s.res.InviteUsed = true
	s.res.VisitRecorded = true
	s.audit("visit_recorded", "invite: "+string(v.Treatment))
	if s.st.Consent != "yes" {
		s.flush(prefix)
		s.ask(StepIntakeConsent, KindReply)
		return
	}
	s.reply(append(prefix, s.checkinTimesText("intake_done"))...)
}

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
	s.res.VisitRecorded = true
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
	if old := s.st.Visit; old != nil {
		for _, c := range s.st.Checkins {
			if c.Soreness != nil {
				s.st.EarlierScores = append(s.st.EarlierScores, EarlierScore{Visit: old.At, Hours: c.Hours, Soreness: *c.Soreness})
			}
		}
		if n := len(s.st.EarlierScores); n > MaxEarlierScores {
			s.st.EarlierScores = append([]EarlierScore(nil), s.st.EarlierScores[n-MaxEarlierScores:]...)
		}
	}
	s.st.Visit = v
	s.st.Draft = nil
	s.st.Checkins = nil
	s.st.Current = -1
	if v.Consent && s.st.Consent == "" {
		s.st.Consent = "yes"
	}
	s.scheduleCheckins()
}

func (s *step) startIntake(prefix []string) {
	s.st.Draft = &Visit{Source: "patient"}
	s.st.Ready = nil
	s.ask(StepIntakeWhen, KindReply, append(prefix, s.text("intake_intro"))...)
}

func (s *step) intakeAnswer(id string, q Question, i int, n, text string, prefix []string) bool {
	if s.st.Draft == nil {
		s.st.Draft = &Visit{Source: "patient"}
	}
	d := s.st.Draft
	switch id {
	case "when":
		var at time.Time
		if i >= 0 {
			at = s.now.Add(-time.Duration(*q.Choices[i].HoursAgo * float64(time.Hour)))
		} else {
			t, ok := ParseWhen(text, s.now, s.loc())
			if !ok {
				if s.readinessIntent(n) || s.faq(n) != "" || s.intent(n, "hello") || s.intent(n, "thanks") {
					return false
				}
				s.reply(append(prefix, s.text("intake_bad_time"))...)
				s.reask("")
				return true
			}
			at = t
		}
		d.At = at
		s.flush(prefix)
		s.ask(nextIntake(s.st.Step), KindReply) // intakeOrder
	case "treatment":
		if i < 0 {
			return false
		}
		d.Treatment = Treatment(q.Choices[i].ID)
		s.flush(prefix)
		s.ask(nextIntake(s.st.Step), KindReply) // intakeOrder
	case "area":
		switch {
		case i >= 0:
			d.Area = q.Choices[i].Label
		case len([]rune(text)) <= 60 && len(strings.Fields(text)) <= 8 && !s.readinessIntent(n) && s.faq(n) == "" && !strings.Contains(n, "?"):
			d.Area = text
		default:
			return false
		}
		s.flush(prefix)
		s.ask(nextIntake(s.st.Step), KindReply) // intakeOrder
	case "acute":
		answered, again := s.yesNoUnsure(n, q, i, prefix, &d.Acute, &d.AcuteUnknown)
		if !answered || again {
			return answered
		}
		if d.AcuteUnknown {
			d.Acute = true // unknown is read as acute: the cautious advice
		}
		s.flush(prefix)
		s.ask(nextIntake(s.st.Step), KindReply) // intakeOrder
	case "child":
		if answered, again := s.yesNoUnsure(n, q, i, prefix, &d.Child, &d.ChildUnknown); !answered || again {
			return answered
		}
		v := *d
		s.st.Step = StepNone
		s.setVisit(&v)
		s.res.VisitRecorded = true
		s.audit("visit_recorded", "patient: "+string(v.Treatment))
		if s.st.Consent == "" {
			s.flush(prefix)
			s.ask(StepIntakeConsent, KindReply)
			return true
		}
		s.reply(append(prefix, s.checkinTimesText("intake_done"))...)
		s.afterIntake()
	case "consent":
		if i < 0 {
			return false
		}
		s.st.Step = StepNone
		if q.Choices[i].ID == "yes" {
			s.st.Consent = "yes"
			s.st.Stopped = false
			s.scheduleCheckins()
			s.audit("consent", "yes")
			s.reply(append(prefix, s.checkinTimesText("intake_done"))...)
		} else {
			s.st.Consent = "no"
			s.audit("consent", "no")
			s.reply(append(prefix, s.text("consent_no"))...)
		}
		s.afterIntake()
	default:
		return false
	}
	return true
}

// afterIntake continues with what the patient asked for before intake.
func (s *step) afterIntake() {
	if s.st.Then == "readiness" {
		s.st.Then = ""
		s.startReadiness()
	}
}

// unsureAnswer reports whether the patient says they do not know ("not
// sure", "idk", "no sé"); it is checked before the choices, so that "not
// sure" is never read as "no".
func (s *step) unsureAnswer(n string) bool {
	return phraseScore(n, s.p.Intents["unsure"], s.p) > 0
}

// yesNoUnsure reads an answer to a yes/no intake question that the patient
// may not know ("not sure", "no sé"): the first such answer asks once more
// (again), the second records unknown; a yes or no clears unknown. answered
// is false when the message is no answer at all.
func (s *step) yesNoUnsure(n string, q Question, i int, prefix []string, yes, unknown *bool) (answered, again bool) {
	if s.unsureAnswer(n) {
		if !*unknown {
			*unknown = true
			s.flush(prefix)
			s.reask(s.text("intake_unsure"))
			return true, true
		}
		return true, false
	}
	if i < 0 {
		return false, false
	}
	*yes, *unknown = q.Choices[i].ID == "yes", false
	return true, false
}
