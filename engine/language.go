package engine

import (
	"strconv"
	"strings"
	"time"
)

// A patient's language is chosen, in order, from what they asked for
// ("español", "in English", /idioma, /language), the visit's language set by
// staff, the platform's language (Telegram language_code, Discord locale),
// a first message written plainly in one language, and the clinic's
// default. It is remembered in State.Lang; staff always read the clinic's
// language.

// lang is the protocol's language code, "en" when unset.
func (p *Protocol) lang() string {
	if p.Language == "" {
		return "en"
	}
	return p.Language
}

// speaks reports whether the engine has a protocol for lang.
func (e *Engine) speaks(lang string) bool {
	_, ok := e.langs[lang]
	return ok
}

// baseLang turns a platform locale ("es-419", "en_US", "ES") into a code.
func baseLang(locale string) string {
	l := strings.ToLower(strings.TrimSpace(locale))
	if i := strings.IndexAny(l, "-_"); i > 0 {
		l = l[:i]
	}
	return l
}

// chooseLanguage settles the language of this step.
func (s *step) chooseLanguage(ev Event) {
	if ev.Kind == EventVisit && ev.Visit != nil && !s.st.LangChosen && s.e.speaks(ev.Visit.Lang) {
		s.st.Lang = ev.Visit.Lang
	}
	if ev.Kind == EventMessage {
		if l := s.askedLanguage(ev.Text); l != "" {
			s.st.Lang, s.st.LangChosen = l, true
		}
		if s.st.Lang == "" {
			switch {
			case s.st.Visit != nil && s.e.speaks(s.st.Visit.Lang):
				s.st.Lang = s.st.Visit.Lang
			case s.e.speaks(baseLang(ev.Lang)):
				s.st.Lang = baseLang(ev.Lang)
			default:
				s.st.Lang = s.detectLanguage(ev.Text)
			}
		}
	}
	s.p = s.e.protocol
	if p, ok := s.e.langs[s.st.Lang]; ok {
		s.p = p
	}
}

// askedLanguage returns the language the whole message asks for, or "".
func (s *step) askedLanguage(text string) string {
	if len(s.e.langs) < 2 || len(text) > 40 {
		return ""
	}
	t, _ := Sanitize(text)
	n := strings.TrimSpace(norm(t))
	if n == "" {
		return ""
	}
	for code, p := range s.e.langs {
		for _, ph := range p.Intents["language"] {
			if strings.TrimSpace(p.phrase(ph)) == n {
				return code
			}
		}
	}
	return ""
}

// detectLanguage picks the language whose common words the message uses
// most, when it clearly differs from the clinic's; otherwise the clinic's.
func (s *step) detectLanguage(text string) string {
	def := s.e.protocol.lang()
	if len(s.e.langs) < 2 {
		return def
	}
	words := strings.Fields(norm(Truncate(text, 400)))
	best, bestN := def, 0
	defN := 0
	for code, p := range s.e.langs {
		n := 0
		for _, w := range words {
			if p.common[w] {
				n++
			}
		}
		if code == def {
			defN = n
		}
		if n > bestN {
			best, bestN = code, n
		}
	}
	// Two common words decide; so does a short message made only of
	// one language's words ("hola", "gracias").
	if best != def && bestN > defN && (bestN >= 2 || bestN == len(words)) {
		return best
	}
	return def
}

// switchedLanguage answers a request for a language ("español").
func (s *step) switchedLanguage(prefix []string) {
	s.reply(append(prefix, s.text("language_set"))...)
	s.reask("")
}

// staffText is a text for staff, in the clinic's language.
func (s *step) staffText(key string) string { return s.e.fill(s.e.protocol.Texts[key]) }

// when says when t is, in the patient's zone and language: "today at
// 19:00", "tomorrow (Mon 2 Nov) at 08:00", "mañana (mar 1 dic) a las 13:18".
func (s *step) when(t time.Time) string {
	lt := t.In(s.loc())
	ln := s.now.In(s.loc())
	y1, m1, d1 := ln.Date()
	y2, m2, d2 := lt.Date()
	c := s.p.Calendar
	tmpl := c.Other
	ty, tm, td := ln.AddDate(0, 0, 1).Date()
	switch {
	case y1 == y2 && m1 == m2 && d1 == d2:
		tmpl = c.Today
	case ty == y2 && tm == m2 && td == d2:
		tmpl = c.Tomorrow
	}
	date := c.Days[lt.Weekday()] + " " + strconv.Itoa(lt.Day()) + " " + c.Months[lt.Month()-1]
	return strings.NewReplacer("{date}", date, "{time}", lt.Format("15:04")).Replace(tmpl)
}

// joinTimes lists times the way the language does ("a and b").
func (s *step) joinTimes(ts []time.Time) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = s.when(t)
	}
	return strings.Join(parts, s.p.Calendar.And)
}
