package engine

import (
	"strconv"
	"strings"
)

var questionCues = []string{"?", "can i", "could i", "should i", "may i", "shall i", "is it ok", "is it okay", "is it safe", "is it fine",
	"am i allowed", "ok to", "okay to", "safe to", "allowed to", "fine to", "when can", "how soon", "puedo", "se puede"}

// readinessIntent spots "can I work out / run / lift today?" questions.
func (s *step) readinessIntent(n string) bool {
	if _, l := s.p.triggerMatch.best(n); l == 0 {
		return false
	}
	if len(strings.Fields(n)) <= 4 {
		return true // "gym today" / "workout?"
	}
	for _, c := range questionCues {
		if hasPhrase(n, c, s.p) || (c == "?" && strings.Contains(n, "?")) {
			return true
		}
	}
	return false
}

func (s *step) startReadiness() {
	s.st.Ready = map[string]string{}
	s.ask(readinessStep(0), KindReply, s.fill(s.p.Readiness.Intro))
}

func (s *step) readinessAnswer(idx string, q Question, i int, f Finding) {
	c := q.Choices[i]
	if s.st.Ready == nil {
		s.st.Ready = map[string]string{}
	}
	s.st.Ready[q.ID] = c.ID
	if l := max(c.Level, f.Level); l >= Urgent {
		s.escalate(l, append(c.Signs, f.Signs...), f.Subject, c.Label, "")
		s.abortFlow("escalated")
		return
	}
	if f.Level == Watch {
		s.escalate(Watch, f.Signs, f.Subject, c.Label, "")
	}
	k, _ := strconv.Atoi(idx)
	if k+1 < len(s.p.Readiness.Questions) {
		s.ask(readinessStep(k+1), KindReply)
		return
	}
	s.st.Step = StepNone
	s.reply(s.advice())
	s.st.Ready = nil
}

// Advice levels, lowest first.
const (
	advRest = iota
	advLight
	advModerate
	advNormal
)

// advice turns readiness answers, treatment and time since the session into
// one advice level with its reasons.
func (s *step) advice() string {
	p := s.p
	lvl := advNormal
	var reasons []string
	var waits, strong []string
	ready := 0
	for _, q := range p.Readiness.Questions {
		id, ok := s.st.Ready[q.ID]
		if !ok {
			continue
		}
		i := findChoice(q.Choices, id)
		if i < 0 {
			continue
		}
		c := q.Choices[i]
		switch c.Signal {
		case "ready":
			ready++
		case "wait":
			waits = append(waits, c.reason())
		case "strong_wait":
			strong = append(strong, c.reason())
		}
	}
	switch {
	case len(strong) > 0:
		lvl = advRest
		reasons = append(reasons, strings.ReplaceAll(p.Advice.Reasons["strong_wait"], "{signs}", strings.Join(append(strong, waits...), ", ")))
	case len(waits) >= 2:
		lvl = advRest
		reasons = append(reasons, strings.ReplaceAll(p.Advice.Reasons["wait"], "{signs}", strings.Join(waits, ", ")))
	case len(waits) == 1:
		lvl = advModerate
		reasons = append(reasons, strings.ReplaceAll(p.Advice.Reasons["wait"], "{signs}", waits[0]))
	case ready == 0:
		lvl = advModerate
		reasons = append(reasons, p.Advice.Reasons["no_ready"])
	default:
		reasons = append(reasons, p.Advice.Reasons["ready"])
	}
	// An acute injury or a wait sign lowers the level one more step below
	// a treatment cap, and caps only ever lower it.
	h := s.hours()
	v := s.st.Visit
	for _, c := range p.Advice.Caps {
		if v == nil {
			break
		}
		if c.Treatment != "" && c.Treatment != v.Treatment {
			continue
		}
		if c.BeforeHours > 0 && h >= c.BeforeHours {
			continue
		}
		if c.Acute && !v.Acute || c.Child && !v.Child && !v.ChildUnknown {
			continue
		}
		if m := advIndex(c.Max); m < lvl {
			lvl = m
			if len(reasons) < 2 {
				reasons = append(reasons, c.Reason)
			} else {
				reasons[1] = c.Reason
			}
			if len(waits) > 0 && lvl > advRest && c.Acute {
				lvl--
			}
		}
	}
	parts := []string{p.Advice.Levels[advLevels[lvl]], s.text("why") + " " + strings.Join(reasons, " ")}
	if v != nil {
		if note := p.Advice.TreatmentNotes[string(v.Treatment)]; note != "" {
			parts = append(parts, strings.ReplaceAll(note, "{hours}", fmtHours(h)))
		}
		if v.Child {
			parts = append(parts, s.text("child_note"))
		}
	}
	parts = append(parts, s.text("stop_and_call"))
	return s.fill(strings.Join(parts, "\n\n"))
}

// reason is how advice names a wait signal.
func (c ChoiceSpec) reason() string {
	if c.Reason != "" {
		return c.Reason
	}
	return strings.ToLower(c.Label)
}
