package engine

import (
	"strconv"
	"strings"
	"time"
)

// TimerKind says what a conversation timer is for. A timer's key is its
// kind, followed for check-ins and nudges by ":" and the check-in's hour
// ("checkin:24", "nudge:48", "clarify", "silent"). Keys are stored with
// the timers, so their spelling is part of the stored format. The engine
// makes and reads them; the store keeps them as given, and anyone else who
// must know what a timer is for asks TimerKindOf instead of spelling a
// prefix.
type TimerKind string

// The conversation's timers.
const (
	TimerCheckin TimerKind = "checkin" // an automatic check-in: "checkin:<hours>"
	TimerNudge   TimerKind = "nudge"   // the reminder after an unanswered check-in: "nudge:<hours>"
	TimerClarify TimerKind = "clarify" // a clarifying or safety-net question runs out
	TimerSilent  TimerKind = "silent"  // whether the patient answered any check-in (silent.go)
)

// TimerKindOf returns the kind of a timer key the engine makes, and "" for
// any other key.
func TimerKindOf(key string) TimerKind {
	kind, _, hasHours := strings.Cut(key, ":")
	switch k := TimerKind(kind); {
	case hasHours && (k == TimerCheckin || k == TimerNudge):
		return k
	case !hasHours && (k == TimerClarify || k == TimerSilent):
		return k
	}
	return ""
}

// timerHours returns the check-in hour of a check-in or nudge key.
func timerHours(key string) (float64, error) {
	_, h, _ := strings.Cut(key, ":")
	return strconv.ParseFloat(h, 64)
}

// hoursKey is the key of a check-in's or nudge's timer.
func hoursKey(k TimerKind, h float64) string {
	return string(k) + ":" + strconv.FormatFloat(h, 'f', -1, 64)
}

func (s *step) timer(key string, at time.Time) {
	s.res.Timers = append(s.res.Timers, Timer{Key: key, At: at})
}

func checkinKey(h float64) string { return hoursKey(TimerCheckin, h) }

func nudgeKey(h float64) string { return hoursKey(TimerNudge, h) }

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
		if s.allowed(due).Before(s.now) {
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
// Each is the time the check-in will actually be sent (moved out of the
// quiet hours), and a check-in counts as still to come by that time, not
// its nominal one, the same rule scheduleCheckins uses: what the bot
// announces is what it does.
func (s *step) upcoming() []time.Time {
	var out []time.Time
	if s.st.Visit == nil {
		return nil
	}
	for _, h := range s.p.Timing.CheckinsHours {
		due := s.st.Visit.At.Add(time.Duration(h * float64(time.Hour)))
		if s.allowed(due).Before(s.now) {
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
	switch TimerKindOf(key) {
	case TimerCheckin:
		h, err := timerHours(key)
		if err != nil {
			s.audit("ignored", "bad timer "+key)
			return
		}
		s.checkinDue(h)
	case TimerNudge:
		h, _ := timerHours(key)
		s.nudgeDue(h)
	case TimerClarify:
		s.clarifyDue()
	case TimerSilent:
		s.silentDue()
	default:
		s.audit("ignored", "unknown timer "+key)
	}
}
