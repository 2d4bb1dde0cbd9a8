package engine_test

import (
	"strings"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
)

// TestIntakeDoesNotGuess: what can be mapped is mapped ("the needles with
// electricity" is electroacupuncture), and "not sure" to the acute or child
// question is asked once more, then recorded as unknown, never as "no".
// An unknown acute injury counts as acute, so advice is capped.
func TestIntakeDoesNotGuess(t *testing.T) {
	for _, tc := range []struct {
		name                string
		lang                string
		says                []string
		treatment           engine.Treatment
		acute, acuteUnknown bool
		child, childUnknown bool
		reasked             int
	}{
		{"electricity", "en", []string{"hi", "2 hours ago", "the needles with electricity", "neck", "no", "no"}, engine.Electroacupuncture, false, false, false, false, 0},
		{"acute not sure then yes", "en", []string{"hi", "2 hours ago", "dry needling", "neck", "not sure", "yes", "no"}, engine.DryNeedling, true, false, false, false, 1},
		{"acute not sure twice", "en", []string{"hi", "2 hours ago", "dry needling", "neck", "not sure", "idk", "no"}, engine.DryNeedling, true, true, false, false, 1},
		{"child idk twice", "en", []string{"hi", "2 hours ago", "acupuncture", "neck", "no", "idk", "not sure"}, engine.Acupuncture, false, false, false, true, 1},
		{"child not sure then no", "en", []string{"hi", "2 hours ago", "acupuncture", "neck", "no", "not sure", "no"}, engine.Acupuncture, false, false, false, false, 1},
		{"es agudo no sé dos veces", "es", []string{"hola", "hace 2 horas", "agujas con electricidad", "cuello", "no sé", "no sé", "no"}, engine.Electroacupuncture, true, true, false, false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newBilingualConvo(t, solClinic())
			reasked := 0
			for _, m := range tc.says {
				before := c.st.Step
				r := c.apply(engine.Event{Kind: engine.EventMessage, Text: m, Lang: tc.lang})
				if before != "" && c.st.Step == before && (before == engine.StepIntakeAcute || before == engine.StepIntakeChild) && len(r.Messages) > 0 {
					reasked++
				}
			}
			v := c.st.Visit
			if v == nil {
				t.Fatalf("no visit recorded; step %v", c.st.Step)
			}
			if v.Treatment != tc.treatment || v.Acute != tc.acute || v.AcuteUnknown != tc.acuteUnknown || v.Child != tc.child || v.ChildUnknown != tc.childUnknown {
				t.Errorf("visit %s acute=%v/%v child=%v/%v, want %s %v/%v %v/%v", v.Treatment, v.Acute, v.AcuteUnknown, v.Child, v.ChildUnknown,
					tc.treatment, tc.acute, tc.acuteUnknown, tc.child, tc.childUnknown)
			}
			if reasked != tc.reasked {
				t.Errorf("asked again %d times, want %d", reasked, tc.reasked)
			}
		})
	}
}

// TestAdviceSaysEachFactOnceWhenItApplies: the dry-needling 24 h rule is
// given once, and only within the first 24 hours; at 50 h "normal
// training is fine" is not followed by "avoid intense exercise for the
// first 24 hours".
func TestAdviceSaysEachFactOnceWhenItApplies(t *testing.T) {
	for _, tc := range []struct {
		hours     time.Duration
		lang      string
		rule      string
		wantRules int
	}{
		{2, "en", "first 24 hours", 1},
		{30, "en", "first 24 hours", 0},
		{50, "en", "first 24 hours", 0},
		{2, "es", "primeras 24 horas", 1},
		{50, "es", "primeras 24 horas", 0},
	} {
		t.Run(tc.lang+"/"+tc.hours.String(), func(t *testing.T) {
			c := newBilingualConvo(t, solClinic())
			c.apply(engine.Event{Kind: engine.EventVisit, Visit: &engine.Visit{At: c.now, Treatment: engine.DryNeedling, Area: "calf", TZ: "America/Chicago", Consent: true, Lang: tc.lang}})
			c.st.Greeted = true
			c.now = c.now.Add(tc.hours * time.Hour)
			msg := func(s string) engine.Result {
				return c.apply(engine.Event{Kind: engine.EventMessage, Text: s, Lang: tc.lang})
			}
			if tc.lang == "es" {
				msg("¿puedo entrenar hoy?")
			} else {
				msg("can I work out today?")
			}
			var r engine.Result
			for _, id := range []string{"energized", "smoother", "none", "better"} {
				r = c.apply(engine.Event{Kind: engine.EventMessage, Choice: id, Lang: tc.lang})
			}
			out := texts(r)
			if n := strings.Count(out, tc.rule); n != tc.wantRules {
				t.Errorf("%q said %d times, want %d:\n%s", tc.rule, n, tc.wantRules, out)
			}
		})
	}
}
