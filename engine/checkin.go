package engine

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

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
	if s.held(checkinKey(h)) {
		return
	}
	if at := s.allowed(s.now); at.After(s.now) {
		s.timer(checkinKey(h), at)
		s.audit("checkin_deferred", fmt.Sprintf("%vh: quiet hours", h))
		return
	}
	// Don't cut into a conversation the patient is in the middle of.
	if s.st.Step != StepNone && !s.st.Step.inCheckin() && s.now.Sub(s.st.LastActive) < 10*time.Minute {
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
	s.st.Step = checkinStep(0)
	if !s.st.Greeted {
		// The first message a clinic-enrolled patient gets says who is
		// writing, that this is no emergency service, and how to stop.
		s.st.Greeted = true
		prefix = append([]string{s.text("greeting")}, prefix...)
	}
	s.send(KindCheckin, strings.Join(append(prefix, s.fill(intro), q.Text), "\n\n"), choices(q))
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
	if s.held(nudgeKey(h)) {
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

func (s *step) checkinAnswer(idx string, q Question, i int, f Finding, text string) {
	ci := s.st.Current
	if ci < 0 || ci >= len(s.st.Checkins) {
		s.st.Step = StepNone
		return
	}
	c := &s.st.Checkins[ci]
	ch := q.Choices[i]
	h := s.hours()
	switch q.ID {
	case "feel":
		c.Feel = ch.ID
	case "soreness":
		v, _ := strconv.Atoi(ch.ID)
		c.Soreness = &v
		r := s.p.Checkin.Rules
		if r.SevereSoreness > 0 && v >= r.SevereSoreness && r.SevereSorenessLevel >= Watch {
			c.Outcome = r.SevereSorenessLevel.String()
			s.escalate(max(r.SevereSorenessLevel, f.Level), append([]string{"severe_soreness"}, f.Signs...), f.Subject, fmt.Sprintf("soreness %d/10 at the %v h check-in", v, c.Hours), "")
			s.abortFlow("escalated")
			return
		}
	case "signs":
		c.Signs = ch.ID
		l := ch.Level
		signs := append([]string{}, ch.Signs...)
		if ch.LevelAfterHours != nil && h >= ch.LevelAfterHours.Hours {
			l = max(l, ch.LevelAfterHours.Level)
		}
		l = max(l, f.Level)
		signs = append(signs, f.Signs...)
		// Compare with the previous check-in: soreness that persists or
		// worsens, or feeling worse, late in recovery is a watch sign.
		r := s.p.Checkin.Rules
		if h >= r.PersistingAfterHours {
			if prev := s.previousCheckin(ci); prev != nil && c.Soreness != nil && prev.Soreness != nil &&
				*c.Soreness >= r.PersistingSorenessMin && *c.Soreness >= *prev.Soreness {
				l = max(l, Watch)
				signs = append(signs, "persisting_soreness")
			} else if prev == nil && c.Soreness != nil && *c.Soreness >= r.PersistingSorenessMin+2 {
				l = max(l, Watch)
				signs = append(signs, "persisting_soreness")
			}
			if c.Feel == "worse" {
				l = max(l, Watch)
				signs = append(signs, "feeling_worse")
			}
		}
		said := fmt.Sprintf("%v h check-in: feel %s, soreness %s, signs: %s", c.Hours, c.Feel, sorenessText(c.Soreness), ch.Label)
		if text != "" && text != ch.Label {
			said += "; wrote: " + text
		}
		s.st.Step = StepNone
		if l >= Watch {
			c.Outcome = l.String()
			s.escalate(l, dedupe(signs), f.Subject, said, "")
			s.st.Step = StepNone
			return
		}
		c.Outcome = "ok"
		tip := s.p.Tips["general"]
		if c.Soreness != nil && *c.Soreness > 0 {
			if t := s.p.Tips["soreness"]; t != "" {
				tip = t
			}
		}
		next := s.text("checkin_last")
		if ts := s.upcoming(); len(ts) > 0 {
			next = strings.ReplaceAll(s.text("checkin_next"), "{next}", s.when(ts[0]))
		}
		s.reply(strings.ReplaceAll(s.text("checkin_done_ok"), "{tip}", s.fill(tip)), next)
		s.audit("checkin_answered", fmt.Sprintf("%vh ok", c.Hours))
		return
	}
	if f.Level == Watch {
		s.escalate(Watch, f.Signs, f.Subject, text, "")
	}
	k, _ := strconv.Atoi(idx)
	if _, sk := s.signsQuestion(); sk == k+1 && s.p.Checkin.SignsGate.Text != "" {
		s.ask(StepCheckinGate, KindReply)
		return
	}
	s.ask(checkinStep(k+1), KindReply)
}

// signsQuestion is the check-in's question of warning signs and its index,
// or -1.
func (s *step) signsQuestion() (Question, int) {
	for i, q := range s.p.Checkin.Questions {
		if q.ID == "signs" {
			return q, i
		}
	}
	return Question{}, -1
}

// gateAnswer applies an answer to the yes/no question before the list of
// warning signs. It reads exactly as the list would: a sign named or
// pressed is that sign, "no" (or a normal after-effect) is "None of
// these", and only "yes" shows the list.
func (s *step) gateAnswer(q Question, i int, n, choice, text string, f Finding, prefix []string) bool {
	sq, k := s.signsQuestion()
	if k < 0 {
		s.st.Step = StepNone
		return false
	}
	none := findChoice(sq.Choices, "none")
	j := match(sq, n, choice, s.p)
	apply := func(j int) bool {
		s.flush(prefix)
		s.st.Step = checkinStep(k)
		said := text
		if choice != "" || (i >= 0 && text == q.Choices[i].Label) {
			said = sq.Choices[j].Label // a button: quote the list's wording
		}
		s.checkinAnswer(strconv.Itoa(k), sq, j, f, said)
		return true
	}
	switch {
	case j >= 0 && j != none:
		return apply(j)
	case i >= 0 && q.Choices[i].ID == "yes":
		s.flush(prefix)
		if f.Level == Watch {
			s.escalate(Watch, f.Signs, f.Subject, text, "")
		}
		s.ask(checkinStep(k), KindReply)
		return true
	case none >= 0 && (j == none || (i >= 0 && q.Choices[i].ID == "no") || (i < 0 && f.Level == None && len(f.Signs) > 0)):
		return apply(none)
	}
	return false
}

func (s *step) previousCheckin(ci int) *Checkin {
	for j := ci - 1; j >= 0; j-- {
		if s.st.Checkins[j].Soreness != nil {
			return &s.st.Checkins[j]
		}
	}
	return nil
}

func sorenessText(v *int) string {
	if v == nil {
		return "not given"
	}
	return strconv.Itoa(*v) + "/10"
}
