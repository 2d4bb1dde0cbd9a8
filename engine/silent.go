package engine

import (
	"fmt"
	"strings"
	"time"
)

// silentKey is the timer that checks, after the last check-in's nudge
// window, whether the patient answered any check-in at all.
const silentKey = string(TimerSilent)

// hours turns a protocol's hours into a duration.
func hours(h float64) time.Duration { return time.Duration(h * float64(time.Hour)) }

// silentAt is when to look for silence after the last check-in, sent at
// sent: silent_after_hours later, and never sooner after its nudge (which
// quiet hours may hold back) than the protocol leaves between the two.
func (s *step) silentAt(sent time.Time) time.Time {
	t := s.e.protocol.Timing
	at := sent.Add(hours(t.SilentAfterHours))
	if t.NudgeAfterHours > 0 {
		nudge := s.allowed(sent.Add(hours(t.NudgeAfterHours)))
		if n := nudge.Add(hours(t.SilentAfterHours - t.NudgeAfterHours)); n.After(at) {
			at = n
		}
	}
	return at
}

// silentDue tells staff, once and at watch level, about a patient who
// answered none of the visit's check-ins, not even after the nudge: without
// it a patient who went quiet (too unwell to answer, or the messages never
// seen) would be invisible. Nothing is sent to the patient. A patient who
// answered or wrote anything, stopped check-ins, was paused by staff, was
// escalated since the visit or cannot be reached (staff were told already)
// is not reported.
func (s *step) silentDue() {
	cs := s.st.Checkins
	switch {
	case s.st.Visit == nil || len(cs) == 0 || !s.st.Silent.IsZero():
		return
	case s.st.Stopped || s.st.Unreachable || s.st.Paused || s.st.Consent != "yes":
		s.audit("silent_skipped", "stopped, paused, unreachable or no consent")
		return
	case !s.st.LastActive.Before(cs[0].Sent):
		s.audit("silent_skipped", "the patient wrote since the first check-in")
		return
	case !s.st.Escalated.Before(s.st.Visit.At):
		s.audit("silent_skipped", "staff were alerted about the patient since the visit")
		return
	}
	for _, c := range cs {
		if c.Feel != "" || (c.Outcome != "" && c.Outcome != "unanswered") {
			s.audit("silent_skipped", fmt.Sprintf("%vh check-in answered", c.Hours))
			return
		}
	}
	t := s.e.protocol.Timing
	last := cs[len(cs)-1]
	if last.Open() && !last.Nudged && t.NudgeAfterHours > 0 && s.now.Before(last.Sent.Add(hours(t.SilentAfterHours)+24*time.Hour)) {
		// The nudge has not gone out yet: give it its time to be answered.
		s.timer(silentKey, s.now.Add(hours(t.SilentAfterHours-t.NudgeAfterHours)))
		s.audit("silent_deferred", "nudge not sent yet")
		return
	}
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = fmt.Sprintf("%v h", c.Hours)
	}
	what := "the " + strings.Join(names, " and ") + " check-in"
	if len(cs) > 1 {
		what += "s"
	}
	s.st.Silent = s.now
	s.alertStaff(Watch, []string{"no_answer"}, "", "", strings.ReplaceAll(s.fill(s.text("silent_note")), "{checkins}", what))
	s.audit("silent_reported", fmt.Sprintf("%d check-ins unanswered", len(cs)))
}
