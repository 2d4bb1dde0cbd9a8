package engine_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aftercare-clinic/aftercare/engine"
)

func TestParseWhen(t *testing.T) {
	loc, _ := time.LoadLocation("America/Chicago")
	now := time.Date(2026, 3, 2, 15, 0, 0, 0, loc) // Monday 15:00
	cases := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"just now", now, true},
		{"now", now, true},
		{"an hour ago", now.Add(-time.Hour), true},
		{"2 hours ago", now.Add(-2 * time.Hour), true},
		{"2h ago", now.Add(-2 * time.Hour), true},
		{"30 min ago", now.Add(-30 * time.Minute), true},
		{"half an hour ago", now.Add(-30 * time.Minute), true},
		{"three hours ago", now.Add(-3 * time.Hour), true},
		{"this morning", time.Date(2026, 3, 2, 9, 0, 0, 0, loc), true},
		{"today", now.Add(-time.Hour), true},
		{"yesterday", now.Add(-24 * time.Hour), true},
		{"yesterday at 5pm", time.Date(2026, 3, 1, 17, 0, 0, 0, loc), true},
		{"at 10:30", time.Date(2026, 3, 2, 10, 30, 0, 0, loc), true},
		{"10:30am", time.Date(2026, 3, 2, 10, 30, 0, 0, loc), true},
		{"14:15", time.Date(2026, 3, 2, 14, 15, 0, 0, loc), true},
		{"at 6pm", time.Date(2026, 3, 1, 18, 0, 0, 0, loc), true}, // later today means yesterday
		{"2 days ago", now.Add(-48 * time.Hour), true},
		{"hace 2 horas", now.Add(-2 * time.Hour), true},
		{"banana", time.Time{}, false},
		{"", time.Time{}, false},
		{"999999999999999999 hours ago", time.Time{}, false},
	}
	for _, tc := range cases {
		got, ok := engine.ParseWhen(tc.in, now, loc)
		if ok != tc.ok || (ok && !got.Equal(tc.want)) {
			t.Errorf("ParseWhen(%q) = %v, %v; want %v, %v", tc.in, got.In(loc), ok, tc.want, tc.ok)
		}
	}
}

func TestParseScore(t *testing.T) {
	cases := []struct {
		in   string
		want int
		ok   bool
	}{
		{"3", 3, true}, {"3/10", 3, true}, {"about 4", 4, true}, {"seven out of ten", 7, true},
		{"10", 10, true}, {"0", 0, true}, {"11", 0, false}, {"none", 0, true}, {"sore", 0, false}, {"-3", 3, true},
	}
	for _, tc := range cases {
		got, ok := engine.ParseScore(tc.in, 0, 10)
		if ok != tc.ok || got != tc.want {
			t.Errorf("ParseScore(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestSanitize(t *testing.T) {
	got, cut := engine.Sanitize("a\x00b\nc\xff" + strings.Repeat("x", 5000))
	if !cut || !utf8.ValidString(got) || strings.ContainsAny(got, "\x00\n") || utf8.RuneCountInString(got) > engine.MaxInputRunes {
		t.Fatalf("Sanitize: cut=%v valid=%v len=%d", cut, utf8.ValidString(got), utf8.RuneCountInString(got))
	}
}

func TestProtocolErrorsNameTheKey(t *testing.T) {
	base := string(engine.DefaultProtocolJSON())
	cases := []struct {
		name, from, to, want string
	}{
		{"unknown key", `"version": 1,`, `"version": 1, "colour": "red",`, `unknown field "colour"`},
		{"missing text", `"greeting": "Hi, this`, `"greetingz": "Hi, this`, `texts.greeting: missing`},
		{"bad level", `"level": "urgent",`, `"level": "urgnt",`, `unknown level "urgnt"`},
		{"bad signal", `"signal": "ready"`, `"signal": "go"`, `.signal: "go"`},
		{"emergency without number", `Call {emergency_number} now. Then`, `Call now. Then`, "escalation.emergency: must contain {emergency_number}"},
		{"bad cap", `"max": "light"`, `"max": "easy"`, `advice.caps[0].max`},
		{"wrong type", `"nudge_after_hours": 6`, `"nudge_after_hours": "six"`, `nudge_after_hours`},
		{"syntax", `"version": 1,`, `"version": 1,,`, "line 2"},
	}
	for _, tc := range cases {
		if !strings.Contains(base, tc.from) {
			t.Fatalf("%s: fixture text %q not in default protocol", tc.name, tc.from)
		}
		_, err := engine.ParseProtocol("clinic.json", []byte(strings.Replace(base, tc.from, tc.to, 1)))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "clinic.json") {
			t.Errorf("%s: error %v, want it to name %q", tc.name, err, tc.want)
		}
	}
}

func FuzzParseWhen(f *testing.F) {
	for _, s := range []string{"2 hours ago", "yesterday at 5pm", "10:30", "at 3", "hace 2 horas", "99999 days ago", "12am", "1.5h"} {
		f.Add(s)
	}
	loc, _ := time.LoadLocation("America/Chicago")
	now := time.Date(2026, 3, 8, 9, 0, 0, 0, loc)
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := engine.ParseWhen(s, now, loc)
		if ok && (got.After(now) || now.Sub(got) > 15*24*time.Hour) {
			t.Fatalf("ParseWhen(%q) = %v: outside [now-15d, now]", s, got)
		}
	})
}

// FuzzMessage feeds arbitrary text and button payloads to the engine in
// every kind of state: it must never panic, always answer the patient, and
// never send more than 4096 characters or invalid UTF-8.
func FuzzMessage(f *testing.F) {
	for _, s := range []string{"hi", "I fainted", "can I run?", "STOP", "\xff\xfe", "3/10", "", "dizzy", "/start x"} {
		f.Add(s, "", uint8(0))
		f.Add(s, "energized", uint8(3))
	}
	e := newEngine(f)
	f.Fuzz(func(t *testing.T, text, choice string, setup uint8) {
		c := &convo{t: t, e: e, id: "fuzz", now: t0, timers: map[string]time.Time{}}
		switch setup % 5 {
		case 1:
			c.say("hi")
		case 2:
			c.visit(engine.DryNeedling)
			c.say("can I run?")
		case 3:
			c.visit(engine.Acupuncture)
			c.advance(24 * time.Hour)
		case 4:
			c.visit(engine.Acupuncture)
			c.say("dizzy")
		}
		r := c.apply(engine.Event{Kind: engine.EventMessage, Text: text, Choice: choice})
		toPatient := 0
		for _, m := range r.Messages {
			if m.To == c.id {
				toPatient++
			}
		}
		if toPatient == 0 {
			t.Fatalf("no answer to %q / %q in setup %d", text, choice, setup%5)
		}
	})
}
