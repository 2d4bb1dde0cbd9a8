package engine

import (
	"slices"
	"strings"
	"time"
)

// The safety net is what the engine does with a message it cannot fully
// account for. A message is accounted for when it is a command, a button,
// an answer to the open question, a recognised aftercare question, small
// talk ("ok", "thanks", good news), or a report of known normal
// after-effects with no other word left unread. Anything else is answered
// with the emergency and clinic numbers and three quick choices, and staff
// are alerted when the patient does not answer within the clarify timeout:
// at urgent when anything in the message hinted at a red flag, otherwise as
// a note for follow-up. So what the bot does not understand can never end
// in "didn't get that" or in reassurance.

// Safety-net choice IDs, sent as "clarify:<id>" button payloads.
const (
	netCall     = "net_call"
	netFine     = "net_fine"
	netQuestion = "net_question"
)

// safetyNet asks the safety-net question about text.
func (s *step) safetyNet(f Finding, text string) {
	// A word of a sign's vocabulary that no rule read (f.Unread) is a hint
	// of a red flag on its own, even with no sign found beside it: a typo
	// of a sign the rules missed must not end as a note for follow-up.
	fallback := None
	if f.Suspect || f.Level >= Watch || f.Unread > 0 {
		fallback = Urgent
	}
	if c := s.st.Clarify; c != nil && c.Net {
		// A second unclear message while the first is pending: keep the
		// more cautious fallback and both texts for staff.
		fallback = max(fallback, c.Fallback)
		text = c.Said + " / " + text
		f.Signs = append(append([]string{}, c.Signs...), f.Signs...)
	}
	ask := Clarify{Text: s.text("safety_net"), Choices: []ClarifyChoice{
		{ID: netCall, Label: s.text("safety_net_call"), Level: Urgent},
		{ID: netFine, Label: s.text("safety_net_fine"), Level: None},
		{ID: netQuestion, Label: s.text("safety_net_ask"), Level: None},
	}}
	s.st.Clarify = &PendingClarify{Ask: ask, Signs: dedupe(slices.Clone(f.Signs)), Subject: f.Subject, Said: Truncate(text, 300), Fallback: fallback, Asked: s.now, Net: true}
	cs := make([]Choice, len(ask.Choices))
	for i, c := range ask.Choices {
		cs[i] = Choice{ID: "clarify:" + c.ID, Label: c.Label}
	}
	s.send(KindReply, ask.Text, cs)
	s.timer(clarifyKey, s.now.Add(time.Duration(s.p.Timing.ClarifyTimeoutMinutes*float64(time.Minute))))
	s.audit("safety_net_asked", fallback.String())
}

// netAnswered handles "It's not urgent" and "I have a question".
func (s *step) netAnswered(id string) {
	s.audit("safety_net_answered", id)
	if id == netQuestion {
		s.reply(s.text("safety_net_question_reply"))
	} else {
		s.reply(s.text("safety_net_fine_reply"))
	}
	if s.st.Visit == nil && s.st.Draft == nil && !s.st.Stopped && s.st.Step == StepNone {
		s.startIntake(nil)
	}
}

// benignOnly reports whether every sign found is a known normal
// after-effect and nothing else in the message was left unread: the only
// case in which the bot may say "that's a normal reaction".
func (s *step) benignOnly(f Finding) bool {
	if len(f.Signs) == 0 || f.Level != None || f.Suspect || f.Unread > 0 {
		return false
	}
	for _, sg := range f.Signs {
		if _, ok := s.p.AfterEffects[sg]; !ok && !s.p.benign[sg] {
			return false
		}
	}
	return true
}

// smallTalk names the small-talk intent the whole message is ("thanks",
// "hello", "ack", "good_news", "unsure"), or "". Small talk needs no safety
// net, but only when nothing in it may be a sign.
func (s *step) smallTalk(n, text string, f Finding) string {
	if f.Suspect || len(f.Signs) > 0 || f.Unread > 0 {
		return ""
	}
	raw := strings.TrimSpace(text)
	for _, k := range []string{"thanks", "hello", "ack", "unsure"} {
		if s.intent(n, k) {
			return k
		}
		if strings.TrimSpace(n) == "" {
			// Emoji only: "👍" is no word at all once normalised.
			for _, p := range s.p.Intents[k] {
				if p == raw {
					return k
				}
			}
		}
	}
	if s.goodNews(n) {
		return "good_news"
	}
	return ""
}

// goodNews spots short messages that only say the patient is well ("I feel
// great!", "much better today, thanks"): a positive word, no negation, no
// question and no more than a short sentence.
func (s *step) goodNews(n string) bool {
	words := strings.Fields(n)
	if len(words) == 0 || len(words) > 40 {
		return false
	}
	pr := s.p
	pos := false
	for _, w := range words {
		if pr.negators[w] {
			return false
		}
		if pr.positive[w] {
			pos = true
		}
	}
	return pos
}

// allClear reports whether the message only mentions signs to say the
// patient does not have them ("no dizziness, no nausea, all good"): every
// mention settled by the rules, nothing unread, nothing suspect.
func (s *step) allClear(f Finding) bool {
	return f.Settled > 0 && len(f.Signs) == 0 && f.Level == None && !f.Suspect && f.Unread == 0
}

// isQuestion reports whether the patient asked something (a question mark,
// or a question word first).
func (s *step) isQuestion(n, text string) bool {
	if strings.ContainsAny(text, "?¿") {
		return true
	}
	// A clause that starts with a question word: "my dog ate the leaflet,
	// can you resend it".
	for _, clause := range strings.FieldsFunc(text, func(r rune) bool { return strings.ContainsRune(".,;!:\n", r) }) {
		if words := strings.Fields(norm(clause)); len(words) > 1 && s.p.questionWords[words[0]] {
			return true
		}
	}
	return false
}

// plainAnswer reports whether the message is plainly an answer to the open
// question (a choice's label or id, a number on a scale, or a short intake
// answer with no sign in it): such answers are taken as answers even when
// the second opinion is wary of them.
func (s *step) plainAnswer(n string, f Finding) bool {
	q, ok := s.question(s.st.Step)
	if !ok {
		return false
	}
	t := strings.TrimSpace(n)
	if s.st.Step.inIntake() && len(f.Signs) == 0 && f.Unread == 0 && len(strings.Fields(t)) <= 6 {
		return true // "my left calf", "about 2 hours ago": intake's free-text answers
	}
	if q.Scale != nil {
		_, ok := ParseScore(n, q.Scale.Min, q.Scale.Max)
		return ok && len(strings.Fields(t)) <= 2
	}
	for _, c := range q.Choices {
		if t == strings.TrimSpace(norm(c.Label)) || t == strings.TrimSpace(norm(c.ID)) {
			return true
		}
	}
	// A short reply that picks a choice by its keywords ("más suelta" for
	// "smoother") with no sign in it is an answer too.
	return len(f.Signs) == 0 && len(strings.Fields(t)) <= 4 && match(q, n, "", s.p) >= 0
}
