package engine_test

import (
	"strings"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
)

// TestAskingForAPerson: asking for a human at any point, mid-question
// too, gets the clinic's number and opening hours and a "Call me back"
// button, then the open question again; the button puts a watch alert
// in front of staff. Before issue 14 these were read as answers (an
// "area" called "can someone call me?") or fell to the safety net.
func TestAskingForAPerson(t *testing.T) {
	cl := solClinic()
	cl.Hours = map[time.Weekday][2]int{
		time.Monday: {9 * 60, 17 * 60}, time.Tuesday: {9 * 60, 17 * 60}, time.Wednesday: {9 * 60, 17 * 60},
		time.Thursday: {9 * 60, 17 * 60}, time.Friday: {9 * 60, 17 * 60}, time.Saturday: {9 * 60, 13 * 60},
	}
	for _, tc := range []struct {
		say, lang, hours, again string
		midQuestion             bool
	}{
		{"I want to talk to someone", "en", "Mon-Fri 09:00-17:00, Sat 09:00-13:00", "", false},
		{"are you a real person?", "en", "Mon-Fri 09:00-17:00", "Which area was treated", true},
		{"can someone call me?", "en", "Sat 09:00-13:00", "Which area was treated", true},
		{"quiero hablar con alguien", "es", "lun-vie 09:00-17:00, sáb 09:00-13:00", "", false},
		{"¿eres una persona?", "es", "lun-vie 09:00-17:00", "¿Qué zona se trató", true},
		{"pueden llamarme?", "es", "sáb 09:00-13:00", "¿Qué zona se trató", true},
	} {
		t.Run(tc.say, func(t *testing.T) {
			c := newBilingualConvo(t, cl)
			msg := func(text string) engine.Result {
				return c.apply(engine.Event{Kind: engine.EventMessage, Text: text, Lang: tc.lang})
			}
			if tc.midQuestion {
				if tc.lang == "es" {
					msg("hola")
					msg("hace 2 horas")
					msg("punción seca")
				} else {
					msg("hi")
					msg("2 hours ago")
					msg("dry needling")
				}
			} else {
				c.st.Greeted = true
			}
			before := c.st.Step
			r := msg(tc.say)
			if len(r.Messages) == 0 {
				t.Fatal("no reply")
			}
			first := r.Messages[0]
			if !strings.Contains(first.Text, "+1-555-0100") || !strings.Contains(first.Text, tc.hours) {
				t.Errorf("reply %q: want the clinic's number and hours %q", first.Text, tc.hours)
			}
			if len(first.Choices) != 1 || first.Choices[0].ID != "callback" {
				t.Fatalf("choices %+v, want one callback button", first.Choices)
			}
			if c.st.Step != before {
				t.Errorf("open question changed from %v to %v", before, c.st.Step)
			}
			if tc.again != "" && (len(r.Messages) < 2 || !strings.Contains(r.Messages[len(r.Messages)-1].Text, tc.again)) {
				t.Errorf("open question not asked again: %q", texts(r))
			}
			for _, m := range r.Messages {
				if m.To == engine.StaffAddress {
					t.Errorf("staff alerted before the patient asked for a call: %q", m.Text)
				}
			}
			r = c.apply(engine.Event{Kind: engine.EventMessage, Choice: "callback", Lang: tc.lang})
			var alert *engine.Outbound
			for i, m := range r.Messages {
				if m.To == engine.StaffAddress {
					alert = &r.Messages[i]
				}
			}
			if alert == nil || alert.Level != engine.Watch || !strings.Contains(alert.Text, "Asked to be called back") {
				t.Fatalf("call back: want a watch alert to staff saying so, got %q", texts(r))
			}
			if r.Escalation == nil || r.Escalation.Level != engine.Watch {
				t.Errorf("call back not recorded as an escalation")
			}
			if c.st.Step != before {
				t.Errorf("open question changed after call back: %v", c.st.Step)
			}
			if tc.again != "" && !strings.Contains(texts(r), tc.again) {
				t.Errorf("open question not asked again after call back: %q", texts(r))
			}
		})
	}
}

func texts(r engine.Result) string {
	var out []string
	for _, m := range r.Messages {
		out = append(out, m.Text)
	}
	return strings.Join(out, "\n---\n")
}
