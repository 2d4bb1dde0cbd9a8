package service

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store"
)

// maxLadderSteps bounds the reminders for one alert (at the default 10
// minutes, four hours of reminders) so a forgotten alert cannot flood a
// channel forever; the last step is audited.
const maxLadderSteps = 24

// startLadder asks the store, through res's timers, to start the
// escalation ladder of res's escalation: the first rung fires AckTimeout
// after now unless staff acknowledge the alert first. Only escalating
// levels get a ladder, and none when AckTimeout is off.
func (s *Service) startLadder(res *engine.Result, now time.Time) {
	if e := res.Escalation; e != nil && e.Level.Escalates() && s.cfg.AckTimeout > 0 {
		res.Timers = append(res.Timers, engine.Timer{Key: store.LadderKey, At: now.Add(s.cfg.AckTimeout)})
	}
}

// isLadderTimer reports whether d is a rung of an escalation's ladder (the
// store keeps those under store.EscalationPatient) rather than a patient's
// timer.
func isLadderTimer(d store.Due) bool {
	return strings.HasPrefix(string(d.Patient), "escalation:")
}

// fireLadder runs one step of an unacknowledged alert's escalation ladder:
// step 1 sends it again to every staff channel, step k >= 2 forwards it to
// the next escalation contact (and staff again); once the contacts are used
// up it keeps reminding everyone until maxLadderSteps.
func (s *Service) fireLadder(ctx context.Context, d store.Due) (bool, error) {
	id, err := strconv.ParseUint(strings.TrimPrefix(string(d.Patient), "escalation:"), 10, 64)
	if err != nil {
		return false, fmt.Errorf("service: bad ladder timer %q", d.Patient)
	}
	n, _ := strconv.Atoi(strings.TrimPrefix(d.Key, "ladder:"))
	now := s.clock.Now()
	var kick []engine.PatientID
	// Wake the dispatchers once the alerts are committed, not before: an
	// early wake-up finds nothing and the alert waits for the next pass.
	defer func() {
		for _, ch := range kick {
			s.kickUrgent(ch.Platform())
		}
	}()
	return s.store.ApplyEscalation(ctx, id, &d, now, func(e *engine.Escalation) (store.EscalationUpdate, error) {
		var up store.EscalationUpdate
		if e.Status != "open" {
			return up, nil
		}
		waited := fmtMinutes(now.Sub(e.At))
		text := fmt.Sprintf("[%s, NOT ACKNOWLEDGED for %s] #%d %s: %s. Signs: %s. Said: \"%s\"",
			strings.ToUpper(e.Level.String()), waited, e.ID, e.Patient, e.Visit, strings.Join(e.Signs, ", "), engine.StaffQuote(e.Said))
		to := append([]engine.PatientID(nil), s.staff...)
		action := "alert_resent"
		if n >= 2 {
			cs := s.cfg.EscalationContacts
			if k := n - 2; k < len(cs) {
				to = append(to, cs[k])
				action = "alert_forwarded"
			} else {
				to = append(to, cs...)
			}
		}
		for _, ch := range dedupeIDs(to) {
			m := engine.Outbound{To: engine.StaffAddress, Channel: ch, Kind: engine.KindAlert, Level: e.Level, Patient: e.Patient,
				Text: text, EscalationID: e.ID, Choices: []engine.Choice{store.AckChoice(e.ID)}, Created: now}
			if ch == engine.StaffAddress {
				m.Channel = ""
			}
			up.Messages = append(up.Messages, m)
			up.Audit = append(up.Audit, engine.Audit{At: now, Actor: "system", Action: action, Patient: e.Patient,
				Detail: fmt.Sprintf("escalation %d step %d to %s", e.ID, n, ch)})
		}
		e.Steps = n
		up.Changed = true
		if n < maxLadderSteps {
			up.Timers = []engine.Timer{{Key: "ladder:" + strconv.Itoa(n+1), At: now.Add(s.cfg.AckTimeout)}}
		} else {
			up.Audit = append(up.Audit, engine.Audit{At: now, Actor: "system", Action: "ladder_exhausted", Patient: e.Patient,
				Detail: fmt.Sprintf("escalation %d still open after %d reminders", e.ID, n)})
		}
		kick = dedupeIDs(to)
		return up, nil
	})
}
