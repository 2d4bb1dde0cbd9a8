package engine

import (
	"strconv"
	"strings"
	"time"
)

func (s *step) timer(key string, at time.Time) {
	s.res.Timers = append(s.res.Timers, Timer{Key: key, At: at})
}

func checkinKey(h float64) string { return "checkin:" + strconv.FormatFloat(h, 'f', -1, 64) }

func nudgeKey(h float64) string { return "nudge:" + strconv.FormatFloat(h, 'f', -1, 64) }

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
