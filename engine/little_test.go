package engine_test

import (
	"strings"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
)

// TestLittleThings covers issue 14's small conversation rough edges, one
// case each, in both languages where the text differs.
func TestLittleThings(t *testing.T) {
	checkin := func(c *convo) {
		c.visit(engine.Acupuncture)
		c.st.Greeted = true
		c.advance(24*time.Hour + time.Minute)
	}
	for _, tc := range []struct {
		name  string
		lang  string
		setup func(c *convo)
		// events: texts to say; "#id" presses a button, "" sends nothing.
		events  []string
		want    []string
		notWant []string
	}{
		{"start is one sentence", "en", func(c *convo) { c.visit(engine.Acupuncture); c.st.Greeted = true },
			[]string{"STOP", "START"}, []string{"Welcome back", "I'll check in with you"}, []string{"\n\n"}},
		{"start is one sentence es", "es", func(c *convo) { c.visit(engine.Acupuncture); c.st.Greeted = true },
			[]string{"PARAR", "REANUDAR"}, []string{"activados de nuevo", "le escribiré"}, []string{"\n\n"}},
		{"help lists forget", "en", nil, []string{"hi", "HELP"}, []string{"/forget"}, nil},
		{"help lists forget es", "es", nil, []string{"hola", "menú"}, []string{"/olvidar"}, nil},
		{"greeting again after forget", "en", func(c *convo) { c.visit(engine.Acupuncture); c.st.Greeted = true },
			[]string{"/forget", "#yes", "hi"}, []string{"not an emergency service"}, nil},
		{"greeting again after forget es", "es", func(c *convo) { c.visit(engine.Acupuncture); c.st.Greeted = true },
			[]string{"/olvidar", "#yes", "hola"}, []string{"No soy un servicio de emergencias"}, nil},
		{"empty with no question open", "en", func(c *convo) { c.visit(engine.Acupuncture); c.st.Greeted = true },
			[]string{""}, []string{"didn't get any text"}, []string{"choices", "tap"}},
		{"empty with no question open es", "es", func(c *convo) { c.visit(engine.Acupuncture); c.st.Greeted = true },
			[]string{""}, []string{"No recibí"}, []string{"opciones", "toque"}},
		{"empty mid-question mentions choices", "en", checkin, []string{""}, []string{"tap one of the choices", "How do you feel today"}, nil},
		{"emoji mid-question asks again", "en", checkin, []string{"👍"}, []string{"How do you feel today"}, nil},
		{"emoji mid-question asks again es", "es", checkin, []string{"🙂"}, []string{"¿Cómo se siente hoy"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newBilingualConvo(t, solClinic())
			c.st.Lang, c.st.LangChosen = tc.lang, tc.lang != "en"
			if tc.setup != nil {
				tc.setup(c)
			}
			var r engine.Result
			for _, ev := range tc.events {
				if strings.HasPrefix(ev, "#") {
					r = c.apply(engine.Event{Kind: engine.EventMessage, Choice: ev[1:], Lang: tc.lang})
				} else {
					r = c.apply(engine.Event{Kind: engine.EventMessage, Text: ev, Lang: tc.lang})
				}
			}
			out := texts(r)
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("want %q in:\n%s", w, out)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out, w) {
					t.Errorf("do not want %q in:\n%s", w, out)
				}
			}
		})
	}
}
