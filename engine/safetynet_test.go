package engine_test

import (
	"strings"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
)

// TestNeverDismissed: whatever the engine cannot account for gets the
// safety net with both numbers, never "didn't get that" or reassurance;
// what it can account for gets no safety net.
func TestNeverDismissed(t *testing.T) {
	p := engine.DefaultProtocol()
	tests := []struct {
		say     string
		net     bool
		replyOf string // a text key the reply must contain, when not net
	}{
		{"something feels weird in my arm", true, ""},
		{"my grandma is acting strange", true, ""},
		{"sore but xyzzy", true, ""},
		{"ok", false, "ack"},
		{"👍", false, "ack"},
		{"thanks", false, "thanks"},
		{"I feel great!", false, "good_news"},
		{"can I take ibuprofen?", false, "cannot_answer"},
		{"my dog ate the leaflet, can you resend it", false, "cannot_answer"},
		{"no dizziness, no nausea", false, "good_news"},
		{"a bit sore", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.say, func(t *testing.T) {
			c := newConvo(t)
			c.visit(engine.Acupuncture)
			r := c.say(tt.say)
			txt := allText(r)
			if strings.Contains(txt, p.Texts["not_understood"]) {
				t.Fatalf("dismissed: %q", txt)
			}
			gotNet := c.st.Clarify != nil && c.st.Clarify.Net
			if gotNet != tt.net {
				t.Fatalf("safety net %v, want %v: %q", gotNet, tt.net, txt)
			}
			if tt.net {
				if !strings.Contains(txt, "911") || !strings.Contains(txt, "+1-555-0100") {
					t.Fatalf("safety net without both numbers: %q", txt)
				}
				if strings.Contains(txt, "normal") {
					t.Fatalf("safety net reassures: %q", txt)
				}
			}
			if tt.replyOf != "" {
				want := strings.NewReplacer("{clinic}", "Test Clinic", "{clinic_phone}", "+1-555-0100", "{emergency_number}", "911").Replace(p.Texts[tt.replyOf])
				if !strings.Contains(txt, want) {
					t.Fatalf("reply %q, want the %s text", txt, tt.replyOf)
				}
			}
		})
	}
}

// TestSafetyNetChoicesAndTimeout covers each way out of the safety net.
func TestSafetyNetChoicesAndTimeout(t *testing.T) {
	tests := []struct {
		name      string
		say       string
		then      func(c *convo) []engine.Result
		wantLevel engine.Level // staff alert level, or -1 for none
		patient   bool         // the patient got escalation instructions
	}{
		{"call the clinic", "something weird happened", func(c *convo) []engine.Result {
			return []engine.Result{c.press("clarify:net_call")}
		}, engine.Urgent, true},
		{"not urgent", "something weird happened", func(c *convo) []engine.Result {
			return []engine.Result{c.press("clarify:net_fine")}
		}, -1, false},
		{"a question", "something weird happened", func(c *convo) []engine.Result {
			return []engine.Result{c.press("clarify:net_question")}
		}, -1, false},
		{"typed answer", "something weird happened", func(c *convo) []engine.Result {
			return []engine.Result{c.say("call the clinic")}
		}, engine.Urgent, true},
		{"suspect, unanswered", "something weird happened", func(c *convo) []engine.Result {
			return c.advance(time.Hour)
		}, engine.Urgent, false},
		{"an unread sign word, unanswered", "my chezt feels funny", func(c *convo) []engine.Result {
			return c.advance(time.Hour)
		}, engine.Urgent, false},
		{"nothing suspect, unanswered", "my grandma is acting strange", func(c *convo) []engine.Result {
			return c.advance(time.Hour)
		}, engine.Watch, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newConvo(t)
			c.visit(engine.Acupuncture)
			c.say(tt.say)
			if c.st.Clarify == nil || !c.st.Clarify.Net {
				t.Fatal("no safety net")
			}
			got, patient := engine.Level(-1), false
			for _, r := range tt.then(c) {
				for _, m := range r.Messages {
					if m.Kind == engine.KindAlert {
						got = max(got, m.Level)
					}
					if m.Kind == engine.KindEscalation {
						patient = true
					}
				}
			}
			if got != tt.wantLevel || patient != tt.patient {
				t.Fatalf("staff alert %v, patient told %v; want %v, %v", got, patient, tt.wantLevel, tt.patient)
			}
			if c.st.Clarify != nil {
				t.Fatal("safety net still pending")
			}
		})
	}
}

// TestButtonIsAnAnswer: a readiness button's label is never read as a
// symptom report, and instability is its own choice.
func TestButtonIsAnAnswer(t *testing.T) {
	c := newConvo(t)
	c.visit(engine.Acupuncture)
	c.say("can I work out today?")
	c.press("usual")
	r := c.press("stiff")
	if r.Escalation != nil || c.st.Step != "readiness.2" {
		t.Fatalf("stiff or sore: escalation %v, step %q", r.Escalation, c.st.Step)
	}
	c2 := newConvo(t)
	c2.visit(engine.Acupuncture)
	c2.say("can I work out today?")
	c2.press("usual")
	r = c2.press("unstable")
	if r.Escalation == nil || r.Escalation.Level != engine.Urgent {
		t.Fatalf("unstable: %s", kinds(r))
	}
}

// TestRedFlagAtTheEndOfALongMessage: triage reads the whole message, even
// past the length the reply quotes.
func TestRedFlagAtTheEndOfALongMessage(t *testing.T) {
	c := newConvo(t)
	c.visit(engine.Acupuncture)
	r := c.say(strings.Repeat("so the session went fine and then I went home. ", 120) + "and then I fainted")
	if r.Escalation == nil || r.Escalation.Level != engine.Emergency {
		t.Fatalf("red flag after %d characters missed: %s", 48*120, kinds(r))
	}
}
