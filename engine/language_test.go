package engine_test

import (
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/engine/enginetest"
	"github.com/aftercare-clinic/aftercare/triage"
)

// bilingual returns an engine of an English-speaking clinic that also
// speaks every embedded language, with the real triage rules, as the
// aftercare command builds it. The clinic's name is Spanish-neutral so
// that a scan for English words does not find it.
func bilingual(t testing.TB, c engine.Clinic) *engine.Engine {
	t.Helper()
	ps := engine.DefaultProtocols()
	e, err := engine.New(ps[0], triage.Default(), c, ps[1:]...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func solClinic() engine.Clinic {
	c := enginetest.Clinic
	c.Name = "Centro Sol"
	return c
}

func newBilingualConvo(t testing.TB, c engine.Clinic) *convo {
	return &convo{t: t, e: bilingual(t, c), id: "p1", now: t0, timers: map[string]time.Time{}}
}

// englishWords are words no Spanish message of the bot should contain.
var englishWords = map[string]bool{
	"the": true, "and": true, "you": true, "your": true, "please": true, "today": true, "tomorrow": true,
	"check": true, "checkin": true, "in": true, "session": true, "clinic": true, "team": true, "call": true,
	"now": true, "if": true, "it": true, "is": true, "with": true, "for": true, "this": true, "that": true,
	"what": true, "how": true, "feel": true, "thanks": true, "sorry": true, "okay": true, "hi": true,
	"hello": true, "help": true, "stop": true, "start": true, "yes": true, "emergency": true, "pain": true,
	"tired": true, "back": true, "neck": true, "i": true, "my": true, "of": true, "to": true, "at": true,
	"on": true, "or": true, "can": true, "will": true, "have": true, "not": true, "any": true, "ll": true,
	"don": true, "t": true, "s": true, "tap": true, "reply": true, "just": true, "about": true, "hours": true,
	"acupuncture": true, "needling": true, "dry": true, "mon": true, "tue": true, "wed": true, "thu": true,
	"fri": true, "sat": true, "sun": true, "signs": true, "said": true,
}

// englishIn returns the English words of a patient-facing text.
func englishIn(text string) []string {
	var out []string
	for _, w := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) }) {
		if englishWords[w] {
			out = append(out, w)
		}
	}
	return out
}

// spanishJourneys drive a Spanish-speaking patient through every journey:
// intake from a first message, readiness, FAQ, help, both check-ins with a
// nudge, red flags mid-question, a clarifying question, STOP/START, the
// safety net, consent declined, forgetting, a closed clinic.
var spanishJourneys = map[string]func(c *convo){
	"intake and readiness": func(c *convo) {
		c.say("hola")
		c.say("hace 2 horas")
		c.say("punción seca")
		c.say("la pantorrilla izquierda")
		c.say("sí")
		c.say("no, es para mí")
		c.say("¿puedo jugar fútbol mañana?")
		c.say("sí, escríbame")
		c.say("con energía")
		c.say("más suelta")
		c.say("un poco")
		c.say("mejor")
		c.say("¿me pongo hielo?")
		c.say("gracias")
		c.advance(72 * time.Hour)
	},
	"check-ins": func(c *convo) {
		c.visitLang(engine.Electroacupuncture, "es")
		c.say("hola")
		c.advance(24*time.Hour + 5*time.Minute)
		c.say("mejor")
		c.say("4/10")
		c.say("nada de esto")
		c.advance(24 * time.Hour)
		c.say("más o menos igual")
		c.say("sigue en 5")
		c.press("none")
		c.advance(48 * time.Hour)
	},
	"nudge, superseded and late": func(c *convo) {
		c.visitLang(engine.Acupuncture, "es")
		c.advance(50 * time.Hour)
	},
	"faq and help": func(c *convo) {
		c.visitLang(engine.Acupuncture, "es")
		for _, m := range []string{"¿puedo tomar café?", "¿puedo tomar una cerveza esta noche?", "¿puedo manejar a mi casa?",
			"¿cuánto dura el dolor?", "me salió un moretón en la mano, ¿es normal?", "¿me puedo bañar?", "¿puedo tomar ibuprofeno?",
			"menú", "ok", "no sé", "me siento muy bien", "", "¿es normal estar cansado?", "¿tengo que tomar agua?"} {
			c.say(m)
		}
	},
	"red flags mid-question": func(c *convo) {
		c.visitLang(engine.DryNeedling, "es")
		c.say("¿puedo salir a correr?")
		c.say("me siento mareado")
		c.press("clarify:settles")
		c.say("¿puedo salir a correr?")
		c.say("me falta el aire y me duele el pecho")
		c.advance(24 * time.Hour)
		c.say("mejor")
		c.say("9")
		c.advance(24 * time.Hour)
		c.press("worse")
		c.say("el corazón me late muy rápido")
	},
	"stop and start": func(c *convo) {
		c.visitLang(engine.Acupuncture, "es")
		c.say("hola")
		c.say("PARAR")
		c.say("el dolor no para")
		c.advance(30 * time.Hour)
		c.say("REANUDAR")
		c.say("REANUDAR")
		c.advance(30 * time.Hour)
	},
	"safety net": func(c *convo) {
		c.visitLang(engine.Acupuncture, "es")
		c.say("algo raro me pasa en el brazo")
		c.press("clarify:net_question")
		c.say("la zona de la pantorrilla se ve medio rara")
		c.press("clarify:net_fine")
		c.say("tengo sueño y el pecho se siente raro")
		c.advance(time.Hour)
	},
	"child, long message, bad invite link": func(c *convo) {
		c.apply(engine.Event{Kind: engine.EventMessage, Text: "/start abc123", Lang: "es-419", Invite: engine.InviteResult{Status: engine.InviteExpired}})
		c.press("now")
		c.press("dry_needling")
		c.say("rodilla")
		c.press("no")
		c.press("yes")
		c.press("yes")
		c.say("¿puede hacer deporte hoy?")
		c.press("usual")
		c.press("same")
		c.press("none")
		c.press("same")
		c.say(strings.Repeat("hoy estoy bien y tranquila. ", 300))
		c.say("mi hijo tiene palpitaciones")
	},
	"consent declined and forget": func(c *convo) {
		c.apply(engine.Event{Kind: engine.EventMessage, Text: "/start", Lang: "es"})
		c.press("1h")
		c.press("acupuncture")
		c.press("neck")
		c.press("no")
		c.press("no")
		c.press("no")
		c.say("hola")
		c.say("/olvidar")
		c.press("no")
		c.say("borrar mis datos")
		c.press("yes")
		c.say("hola")
	},
}

// TestSpanishPatientGetsNoEnglish sends a Spanish-speaking patient through
// every journey and fails on any English word in a message to them. Staff
// messages stay in the clinic's language and are not scanned.
func TestSpanishPatientGetsNoEnglish(t *testing.T) {
	closed := solClinic()
	closed.Hours = map[time.Weekday][2]int{} // never open: the closed-clinic texts
	closed.AfterHoursPhone = "+1-555-0199"
	for _, clinic := range []struct {
		name string
		c    engine.Clinic
	}{{"open", solClinic()}, {"closed", closed}} {
		for name, journey := range spanishJourneys {
			t.Run(clinic.name+"/"+name, func(t *testing.T) {
				c := newBilingualConvo(t, clinic.c)
				var sent []engine.Outbound
				c.onResult = func(r engine.Result) { sent = append(sent, r.Messages...) }
				journey(c)
				patient := 0
				for _, m := range sent {
					if m.To == engine.StaffAddress {
						continue
					}
					patient++
					texts := []string{m.Text}
					for _, ch := range m.Choices {
						texts = append(texts, ch.Label)
					}
					for _, tx := range texts {
						if en := englishIn(tx); len(en) > 0 {
							t.Errorf("English %v in %s: %q", en, m.Kind, tx)
						}
					}
				}
				if patient < 3 {
					t.Fatalf("only %d messages to the patient; the journey did not run", patient)
				}
				if c.st.Lang != "es" {
					t.Errorf("State.Lang = %q, want es", c.st.Lang)
				}
			})
		}
	}
}

// TestEnglishWordScanWorks keeps the scan honest: the English texts of the
// same journeys are caught.
func TestEnglishWordScanWorks(t *testing.T) {
	for _, s := range []string{
		"Thanks for checking in. I'll check in again tomorrow (Tue 3 Mar) at 10:00.",
		"Please call Centro Sol now at +1-555-0100",
		"Which treatment did you have?",
	} {
		if len(englishIn(s)) == 0 {
			t.Errorf("no English found in %q", s)
		}
	}
	if en := englishIn("Le vuelvo a escribir mañana (mié 4 mar) a las 10:00."); len(en) > 0 {
		t.Errorf("English %v found in Spanish", en)
	}
}

// visitLang records a clinic visit in a language, as staff would.
func (c *convo) visitLang(tr engine.Treatment, lang string) {
	c.t.Helper()
	c.apply(engine.Event{Kind: engine.EventVisit, Visit: &engine.Visit{At: c.now, Treatment: tr, Area: "espalda baja", TZ: "America/Chicago", Consent: true, Lang: lang}})
}

// TestLanguageChoice checks the order a patient's language is chosen in:
// what they asked for, the visit's, the platform's, a first message's, the
// clinic's; and that the choice is remembered.
func TestLanguageChoice(t *testing.T) {
	type step struct {
		visitLang string // record a visit in this language first ("-" for none)
		say       string
		platform  string // Telegram language_code / Discord locale
		want      string // a phrase the bot's reply contains
		lang      string // State.Lang after the step
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"español switches and is remembered", []step{
			{visitLang: "en", say: "hello", want: "Hi, this is the aftercare assistant", lang: "en"},
			{say: "español", want: "le escribiré en español", lang: "es"},
			{say: "thanks", want: "De nada", lang: "es"},
			{say: "gracias", want: "De nada", lang: "es"},
		}},
		{"english switches back", []step{
			{visitLang: "es", say: "hola", want: "Hola, soy el asistente", lang: "es"},
			{say: "in English", want: "I'll write in English", lang: "en"},
			{say: "gracias", want: "You're welcome", lang: "en"},
			{say: "/idioma", want: "le escribiré en español", lang: "es"},
			{say: "/language", want: "I'll write in English", lang: "en"},
		}},
		{"a patient's choice outlives a later visit", []step{
			{visitLang: "-", say: "inglés", platform: "es", want: "I'll write in English", lang: "en"},
			{visitLang: "es", say: "gracias", want: "You're welcome", lang: "en"},
		}},
		{"Telegram language_code es picks Spanish", []step{
			{visitLang: "-", say: "/start", platform: "es", want: "¿Cuándo fue su sesión?", lang: "es"},
		}},
		{"a regional locale picks its language", []step{
			{visitLang: "-", say: "hi", platform: "es-419", want: "Hola, soy el asistente", lang: "es"},
		}},
		{"visit lang wins over the platform's", []step{
			{visitLang: "es", say: "hi", platform: "en-US", want: "Hola, soy el asistente", lang: "es"},
		}},
		{"visit in English wins over a Spanish platform", []step{
			{visitLang: "en", say: "hola", platform: "es", want: "Hi, this is the aftercare assistant", lang: "en"},
		}},
		{"an unknown platform language falls through", []step{
			{visitLang: "-", say: "hello", platform: "de", want: "Hi, this is the aftercare assistant", lang: "en"},
		}},
		{"a first message in Spanish gets Spanish", []step{
			{visitLang: "-", say: "hola", want: "¿Cuándo fue su sesión?", lang: "es"},
		}},
		{"a longer first message in Spanish gets Spanish", []step{
			{visitLang: "-", say: "me duele un poco la espalda después de la sesión", want: "Hola, soy el asistente", lang: "es"},
		}},
		{"a first message in English gets English", []step{
			{visitLang: "-", say: "my back is a bit sore after the session", want: "Hi, this is the aftercare assistant", lang: "en"},
		}},
		{"a word both languages share keeps the clinic's", []step{
			{visitLang: "-", say: "no", want: "Hi, this is the aftercare assistant", lang: "en"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newBilingualConvo(t, solClinic())
			for i, s := range tc.steps {
				switch s.visitLang {
				case "":
				case "-":
				default:
					c.visitLang(engine.Acupuncture, s.visitLang)
				}
				r := c.apply(engine.Event{Kind: engine.EventMessage, Text: s.say, Lang: s.platform})
				if got := allText(r); !strings.Contains(got, s.want) {
					t.Errorf("step %d %q: reply lacks %q:\n%s", i, s.say, s.want, got)
				}
				if c.st.Lang != s.lang {
					t.Errorf("step %d %q: State.Lang = %q, want %q", i, s.say, c.st.Lang, s.lang)
				}
			}
		})
	}
}

// TestStaffAlertsStayInTheClinicsLanguage checks that a Spanish patient's
// red flag reaches staff in the clinic's language, quoting the patient.
func TestStaffAlertsStayInTheClinicsLanguage(t *testing.T) {
	c := newBilingualConvo(t, solClinic())
	c.visitLang(engine.DryNeedling, "es")
	r := c.say("me falta el aire y me duele el pecho")
	var alert, esc string
	for _, m := range r.Messages {
		switch m.Kind {
		case engine.KindAlert:
			alert = m.Text
		case engine.KindEscalation:
			esc = m.Text
		}
	}
	if !strings.Contains(esc, "Llame al 911 ahora") {
		t.Errorf("escalation to the patient not in Spanish: %q", esc)
	}
	for _, want := range []string{"[EMERGENCY]", "dry needling", "since session", "Signs:", `Said: "me falta el aire y me duele el pecho"`} {
		if !strings.Contains(alert, want) {
			t.Errorf("staff alert lacks %q: %q", want, alert)
		}
	}
}

// TestSpanishCalendar checks dates and times in Spanish.
func TestSpanishCalendar(t *testing.T) {
	c := newBilingualConvo(t, solClinic())
	c.now = time.Date(2026, 11, 30, 19, 18, 0, 0, time.UTC) // 13:18 in Chicago, Monday
	c.visitLang(engine.Acupuncture, "es")
	r := c.say("hola")
	if got := allText(r); !strings.Contains(got, "mañana (mar 1 dic) a las 13:18 y el mié 2 dic a las 13:18") {
		t.Errorf("check-in times not in Spanish:\n%s", got)
	}
}
