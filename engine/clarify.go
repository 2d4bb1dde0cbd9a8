package engine

import (
	"strings"
	"time"
)

// clarifyKey is the timer after which an unanswered clarifying or
// safety-net question (safetynet.go) is settled without the patient.
const clarifyKey = string(TimerClarify)

func (s *step) startClarify(f Finding, said string) {
	s.st.Clarify = &PendingClarify{Ask: *f.Ask, Signs: f.Signs, Subject: f.Subject, Said: Truncate(said, 300), Fallback: clarifyFallback(f), Asked: s.now}
	cs := make([]Choice, len(f.Ask.Choices))
	for i, c := range f.Ask.Choices {
		cs[i] = Choice{ID: "clarify:" + c.ID, Label: c.Label}
	}
	// A possible red flag is asked about, never left without the numbers:
	// the question comes with what to do if it is an emergency.
	text := f.Ask.Text
	for _, c := range f.Ask.Choices {
		if c.Level >= Urgent {
			text += "\n\n" + s.text("clarify_numbers")
			break
		}
	}
	s.send(KindReply, text, cs)
	s.timer(clarifyKey, s.now.Add(time.Duration(s.p.Timing.ClarifyTimeoutMinutes*float64(time.Minute))))
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
	s.timer(clarifyKey, time.Time{})
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
	note := s.fill(strings.ReplaceAll(s.staffText("clarify_timeout_alert"), "{patient}", s.staffText("the_patient")))
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

// clarifyFallback is the level an unanswered clarifying question falls
// back to. When one of its answers would be a red flag, silence is read as
// that red flag (capped at urgent: staff look, nobody is sent an ambulance
// on a guess): a patient who asked "is an irregular heartbeat normal?" and
// then went quiet may be the one it is happening to.
func clarifyFallback(f Finding) Level {
	l := f.Level
	for _, c := range f.Ask.Choices {
		if c.Level >= Urgent {
			l = max(l, Urgent)
		}
	}
	return l
}
