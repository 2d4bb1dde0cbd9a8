package engine_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/engine/enginetest"
)

// TestSilentPatientReportedOnce follows a visit to 72 h and counts the
// staff reports about a patient who answered no check-in: one watch-level
// alert after the last check-in's nudge window when nobody answered, none
// when the patient answered, wrote, stopped, was escalated or paused, or
// when the protocol turns the report off.
func TestSilentPatientReportedOnce(t *testing.T) {
	tests := []struct {
		name   string
		silent float64 // protocol's silent_after_hours; -1 keeps the default
		setup  func(c *convo)
		want   int
	}{
		{"answers nothing", -1, func(c *convo) {}, 1},
		{"answers the 24 h check-in only", -1, func(c *convo) {
			c.advance(24*time.Hour + time.Minute)
			c.press("better")
		}, 0},
		{"answers the nudge of the 48 h check-in", -1, func(c *convo) {
			c.advance(48*time.Hour + 7*time.Hour)
			c.press("better")
		}, 0},
		{"writes between the check-ins", -1, func(c *convo) {
			c.advance(30 * time.Hour)
			c.say("thanks")
		}, 0},
		{"replies STOP", -1, func(c *convo) {
			c.advance(25 * time.Hour)
			c.say("STOP")
		}, 0},
		{"escalated in between", -1, func(c *convo) {
			c.advance(30 * time.Hour)
			c.say("I fainted")
		}, 0},
		{"escalated before the check-ins", -1, func(c *convo) {
			c.advance(10 * time.Hour)
			c.say("I fainted")
		}, 0},
		{"paused by staff", -1, func(c *convo) {
			c.advance(49 * time.Hour)
			c.apply(engine.Event{Kind: engine.EventStaff, Action: "pause", Actor: "telegram:42"})
		}, 0},
		{"report turned off", 0, func(c *convo) {}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newConvo(t)
			if tt.silent >= 0 {
				p := engine.DefaultProtocol()
				p.Timing.SilentAfterHours = tt.silent
				e, err := engine.New(p, enginetest.Triage{}, enginetest.Clinic)
				if err != nil {
					t.Fatal(err)
				}
				c.e = e
			}
			c.visit(engine.DryNeedling)
			var reports []engine.Outbound
			collect := func(rs ...engine.Result) {
				for _, r := range rs {
					for _, m := range r.Messages {
						if m.To == engine.StaffAddress && strings.Contains(m.Text, "No answer to") {
							reports = append(reports, m)
						}
					}
				}
			}
			// The setup's own steps are not collected: it may escalate.
			tt.setup(c)
			collect(c.advance(t0.Add(72 * time.Hour).Sub(c.now))...)
			collect(c.advance(7 * 24 * time.Hour)...)
			if len(reports) != tt.want {
				t.Fatalf("%d silence reports, want %d: %+v", len(reports), tt.want, reports)
			}
			if tt.want == 0 {
				return
			}
			m := reports[0]
			if m.Kind != engine.KindAlert || m.Level != engine.Watch || m.Patient != "p1" {
				t.Errorf("report %+v, want a watch-level alert about p1", m)
			}
			if !strings.Contains(m.Text, "No answer to the 24 h and 48 h check-ins") || strings.Contains(m.Text, "Said:") {
				t.Errorf("report text %q", m.Text)
			}
			if len(c.esc) != 1 || c.esc[0].Level != engine.Watch || c.st.Silent.IsZero() {
				t.Errorf("escalations %+v, silent %v: want one watch record and the report remembered", c.esc, c.st.Silent)
			}
		})
	}
}

// TestSilentReportWaitsForHeldNudge sends the last check-in late in the
// evening, so quiet hours hold its nudge until morning: the report waits
// for the nudge and the time to answer it, never racing ahead of it.
func TestSilentReportWaitsForHeldNudge(t *testing.T) {
	c := newConvo(t)
	// 10:00 Chicago + 48 h = 10:00; put the session at 19:00 instead, so
	// the 48 h check-in goes out at 19:00 and its nudge (01:00) is held
	// until the quiet hours end.
	c.now = t0.Add(9 * time.Hour)
	c.visit(engine.DryNeedling)
	var nudgeAt, reportAt time.Time
	for _, r := range c.advance(5 * 24 * time.Hour) {
		for _, m := range r.Messages {
			switch {
			case m.Kind == engine.KindNudge:
				nudgeAt = m.Created
			case m.To == engine.StaffAddress:
				reportAt = m.Created
			}
		}
	}
	if nudgeAt.IsZero() || reportAt.IsZero() {
		t.Fatalf("nudge at %v, report at %v: want both", nudgeAt, reportAt)
	}
	if gap := reportAt.Sub(nudgeAt); gap < 6*time.Hour {
		t.Fatalf("report %v after the last nudge, want at least the 6 h between nudge and report", gap)
	}
}

func TestSilentAfterHoursValidated(t *testing.T) {
	tests := []struct {
		name    string
		silent  float64
		note    string
		wantErr string
	}{
		{"default", 12, "No answer to {checkins}.", ""},
		{"off, no text needed", 0, "", ""},
		{"before the nudge", 3, "No answer to {checkins}.", "timing.silent_after_hours"},
		{"negative", -1, "No answer to {checkins}.", "timing.silent_after_hours"},
		{"text missing", 12, "", "texts.silent_note"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := engine.DefaultProtocol()
			p.Timing.SilentAfterHours = tt.silent
			p.Texts["silent_note"] = tt.note
			b, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			_, err = engine.ParseProtocol("clinic.json", b)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
