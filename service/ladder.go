package service

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/staffgate"
	"github.com/aftercare-clinic/aftercare/store/storage"
)

// The escalation ladder: an urgent or emergency alert that stays
// unacknowledged is sent again to every staff channel after AckTimeout
// (rung 1), then forwarded to each escalation contact in turn (rungs 2,
// 3, ...), then repeated to everyone until maxLadderSteps. Everything about
// it lives here: the first rung (startLadder), the acknowledge button
// (ackChoice), the re-alert wording and forwarding (fireLadder). The store
// keeps the rungs as the escalation's own timers (storage.EscalationOwner,
// keys "ladder:<n>") without reading them; Fire hands them back here.

// EscalationStore keeps escalation records: the ladder and the staff
// commands update one in a transaction of its own.
type EscalationStore interface {
	// ApplyEscalation loads escalation id, calls fn with it and commits
	// the update; with due set it is skipped (false) when that timer of
	// the escalation is gone. storage.ErrNotFound for an unknown id.
	ApplyEscalation(ctx context.Context, id uint64, due *storage.Due, now time.Time, fn func(*engine.Escalation) (storage.EscalationUpdate, error)) (bool, error)
	// Escalations returns the escalation records, oldest first.
	Escalations() ([]engine.Escalation, error)
}

// maxLadderSteps bounds the reminders for one alert (at the default 10
// minutes, four hours of reminders) so a forgotten alert cannot flood a
// channel forever; the last step is audited.
const maxLadderSteps = 24

// ladderKey is the key of rung n of an escalation's ladder; ladderRung
// reads it back.
func ladderKey(n int) string { return "ladder:" + strconv.Itoa(n) }

func ladderRung(key string) (int, bool) {
	s, ok := strings.CutPrefix(key, "ladder:")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 1
}

// ackChoice is the button on a staff alert that acknowledges escalation
// id: pressed, it is the command "/ack <id>" (staffgate.Button).
func ackChoice(id uint64) engine.Choice {
	return engine.Choice{ID: staffgate.Button("ack", strconv.FormatUint(id, 10)), Label: "Acknowledge"}
}

// startLadder is the store's Step.OnEscalation for a step at now: once the
// step's escalation e has its ID, it ties the step's staff alerts to it
// with the acknowledge button, and returns the first rung of e's ladder,
// AckTimeout after now. Only escalating levels get a ladder, and none when
// AckTimeout is off. It changes only ms and depends only on its arguments,
// as the store requires (a group commit may run it twice).
func (s *Service) startLadder(now time.Time) func(e engine.Escalation, ms []engine.Outbound) []engine.Timer {
	return func(e engine.Escalation, ms []engine.Outbound) []engine.Timer {
		for i, m := range ms {
			if m.Kind == engine.KindAlert && m.EscalationID == 0 {
				ms[i].EscalationID = e.ID
				ms[i].Choices = append(append([]engine.Choice(nil), m.Choices...), ackChoice(e.ID))
			}
		}
		if !s.laddered(&e) {
			return nil
		}
		return []engine.Timer{{Key: ladderKey(1), At: now.Add(s.cfg.AckTimeout)}}
	}
}

// laddered reports whether escalation e gets a ladder: an escalating level
// while AckTimeout is on.
func (s *Service) laddered(e *engine.Escalation) bool {
	return e != nil && e.Level.Escalates() && s.cfg.AckTimeout > 0
}

// fireLadder runs one rung of an unacknowledged alert's escalation ladder
// (d is one of the escalation's timers): rung 1 sends it again to every
// staff channel, rung k >= 2 forwards it to the next escalation contact
// (and staff again); once the contacts are used up it keeps reminding
// everyone until maxLadderSteps.
func (s *Service) fireLadder(ctx context.Context, d storage.Due) (bool, error) {
	id := d.Escalation
	n, ok := ladderRung(d.Key)
	if !ok {
		return false, fmt.Errorf("service: escalation %d: timer %q is not a ladder rung", id, d.Key)
	}
	now := s.clock.Now()
	var kick []engine.PatientID
	// Wake the dispatchers once the alerts are committed, not before: an
	// early wake-up finds nothing and the alert waits for the next pass.
	defer func() {
		for _, ch := range kick {
			s.kickUrgent(ch.Platform())
		}
	}()
	return s.store.ApplyEscalation(ctx, id, &d, now, func(e *engine.Escalation) (storage.EscalationUpdate, error) {
		var up storage.EscalationUpdate
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
				Text: text, EscalationID: e.ID, Choices: []engine.Choice{ackChoice(e.ID)}, Created: now}
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
			up.Timers = []engine.Timer{{Key: ladderKey(n + 1), At: now.Add(s.cfg.AckTimeout)}}
		} else {
			up.Audit = append(up.Audit, engine.Audit{At: now, Actor: "system", Action: "ladder_exhausted", Patient: e.Patient,
				Detail: fmt.Sprintf("escalation %d still open after %d reminders", e.ID, n)})
		}
		kick = dedupeIDs(to)
		return up, nil
	})
}
