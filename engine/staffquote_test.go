package engine_test

import (
	"strings"
	"testing"
	"unicode"

	"github.com/aftercare-clinic/aftercare/engine"
)

// TestHostileNamesAndTextsCannotForgeStaffLines gives the engine display
// names and messages built to forge alert lines, level tags, headers and
// "[Acknowledge](link)" buttons, and checks what staff get: one line, no
// control or bidirectional formatting characters, the patient's words only
// inside their quotes, no brackets but the bot's own level tag.
func TestHostileNamesAndTextsCannotForgeStaffLines(t *testing.T) {
	tests := []struct {
		name, said string
	}{
		{"Eve\u202E\u2066 gnitniaf :1:margelet ]TNEGRU[", "I fainted"},
		{"Eve\n[URGENT] telegram:1: chest pain\n# Acknowledge", "I fainted"},
		{"[Acknowledge](https://evil.example/ack)", "I fainted"},
		{"Eve", "I fainted and my chest hurts\" [Acknowledge](https://evil.example/ack) \u202E"},
		{"Eve\r\n\u2028**ALL CLEAR**\u200B", "I fainted and my chest hurts\n\n# [EMERGENCY] telegram:2"},
		{"`code` <@&123> @everyone", "I fainted ||spoiler|| > quote"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newConvo(t)
			c.visit(engine.DryNeedling)
			r := c.apply(engine.Event{Kind: engine.EventMessage, Text: tt.said, DisplayName: tt.name})
			if strings.ContainsAny(c.st.DisplayName, "\n\r\u202E\u2066\u200B\u2028") {
				t.Errorf("stored display name keeps control characters: %q", c.st.DisplayName)
			}
			var alerts []string
			for _, m := range r.Messages {
				if m.To == engine.StaffAddress {
					alerts = append(alerts, m.Text)
				}
			}
			un := c.apply(engine.Event{Kind: engine.EventUnreachable, Platform: "telegram"})
			for _, m := range un.Messages {
				alerts = append(alerts, m.Text)
			}
			if len(alerts) != 2 {
				t.Fatalf("staff messages %q, want an alert and an unreachable notice", alerts)
			}
			for i, a := range alerts {
				for _, ch := range a {
					if ch == '\n' || ch == '\r' || unicode.IsControl(ch) || unicode.Is(unicode.Cf, ch) || ch == '\u2028' {
						t.Errorf("staff message holds %U: %q", ch, a)
					}
				}
				brackets := strings.Count(a, "[") + strings.Count(a, "]")
				if i == 0 && (!strings.HasPrefix(a, "[EMERGENCY] p1 (\"") || brackets != 2) {
					t.Errorf("alert must start with the bot's one level tag and the quoted name: %q", a)
				}
				if i == 1 && brackets != 0 {
					t.Errorf("notice holds brackets the bot did not write: %q", a)
				}
				if strings.Contains(a, "](") {
					t.Errorf("staff message holds a link in markup: %q", a)
				}
			}
			// Quotes: two around the name, two around what was said.
			if n := strings.Count(alerts[0], `"`); n != 4 {
				t.Errorf("alert has %d double quotes, want 4 (patient text closed a quote): %q", n, alerts[0])
			}
			if !strings.HasSuffix(alerts[0], `"`) {
				t.Errorf("alert must end with the quoted message: %q", alerts[0])
			}
		})
	}
}

func TestStaffQuote(t *testing.T) {
	for in, want := range map[string]string{
		"Jane Doe":                 "Jane Doe",
		"a\nb\u202Ec":              "a b c",
		`say "hi" [now]`:           `say 'hi' (now)`,
		"[Ack](https://x.example)": "(Ack)(https://x.example)",
	} {
		if got := engine.StaffQuote(in); got != want {
			t.Errorf("StaffQuote(%q) = %q, want %q", in, got, want)
		}
	}
}
