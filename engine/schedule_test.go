package engine_test

import (
	"strings"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
)

// TestAnnouncedCheckinIsWhenItIsSent: a check-in whose nominal time fell in
// the quiet hours is still to come until the quiet hours end, so the bot
// announces it for that morning and sends it then (issue 14: promised
// "tomorrow at 08:00", sent the same day at 08:00).
func TestAnnouncedCheckinIsWhenItIsSent(t *testing.T) {
	// 04:00 in Chicago; the clinic's quiet hours are 21:00-08:00.
	visitAt := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		says []string
	}{
		{"start after stop", []string{"STOP", "START"}},
		{"hello", []string{"hello"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newConvo(t)
			c.now = visitAt
			c.visit(engine.DryNeedling)
			c.st.Greeted = true
			c.now = visitAt.Add(24*time.Hour + 30*time.Minute) // 04:30 the next day
			var last engine.Result
			for _, m := range tc.says {
				last = c.say(m)
			}
			var parts []string
			for _, m := range last.Messages {
				parts = append(parts, m.Text)
			}
			text := strings.Join(parts, "\n")
			if !strings.Contains(text, "today at 08:00") {
				t.Fatalf("announced %q, want the 24 h check-in today at 08:00", text)
			}
			var sent time.Time
			c.onResult = func(r engine.Result) {
				for _, m := range r.Messages {
					if m.Kind == engine.KindCheckin && sent.IsZero() {
						sent = c.now
					}
				}
			}
			c.advance(5 * time.Hour)
			if want := visitAt.Add(28 * time.Hour); !sent.Equal(want) {
				t.Fatalf("check-in sent at %v, want %v as announced", sent, want)
			}
		})
	}
}

// TestTimerKindOf: the kinds of the keys the engine makes, read back the
// way the engine's own due step and the service read them; a key the
// engine never makes has no kind.
func TestTimerKindOf(t *testing.T) {
	tests := []struct {
		key  string
		want engine.TimerKind
	}{
		{"checkin:24", engine.TimerCheckin},
		{"checkin:1.5", engine.TimerCheckin},
		{"checkin:", engine.TimerCheckin}, // a kind with a bad hour: the engine audits it as a bad timer
		{"nudge:48", engine.TimerNudge},
		{"clarify", engine.TimerClarify},
		{"silent", engine.TimerSilent},
		{"checkin", ""},
		{"clarify:1", ""},
		{"silent:24", ""},
		{"ladder:1", ""},
		{"Checkin:24", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := engine.TimerKindOf(tt.key); got != tt.want {
			t.Errorf("TimerKindOf(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
}

// TestTimersTheEngineSetsHaveAKind: every timer a visit, its check-ins,
// their nudges, the silence check and a safety-net question set carries a
// key TimerKindOf knows, so no timer the engine makes is one it cannot fire.
func TestTimersTheEngineSetsHaveAKind(t *testing.T) {
	c := newConvo(t)
	seen := map[engine.TimerKind]bool{}
	c.onResult = func(r engine.Result) {
		for _, tm := range r.Timers {
			k := engine.TimerKindOf(tm.Key)
			if k == "" {
				t.Errorf("timer %q has no kind", tm.Key)
			}
			seen[k] = true
		}
	}
	c.visit(engine.DryNeedling)
	c.say("asdfgh qwerty") // nothing the engine can account for: the safety-net question
	c.advance(7 * 24 * time.Hour)
	for _, k := range []engine.TimerKind{engine.TimerCheckin, engine.TimerNudge, engine.TimerClarify, engine.TimerSilent} {
		if !seen[k] {
			t.Errorf("no %s timer set in a week without answers (saw %v)", k, seen)
		}
	}
}
