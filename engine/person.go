package engine

import (
	"fmt"
	"strings"
	"time"
)

// callbackChoice is the button that asks staff to call the patient back.
const callbackChoice = "callback"

// wantsPerson reports whether the message asks for a human ("can someone
// call me?", "¿eres una persona?"). It matches phrases anywhere in the
// message, so it works mid-question too.
//
// A message triage finds suspect is taken as a request for a person only
// when little else is in it ("I want to talk to someone"): "my leg went
// numb, can someone call me?" must go to the safety net's questions,
// which may find a red flag.
func (s *step) wantsPerson(n string, suspect bool) bool {
	if _, l := s.p.personMatch.best(n); l == 0 {
		return false // no phrase of the intent in n: most messages
	}
	rest, found := n, false
	for _, ph := range s.p.Intents["person"] {
		if p := strings.TrimSpace(s.p.phrase(ph)); p != "" && normScore(n, s.p.phrase(ph)) > 0 {
			found = true
			rest = strings.ReplaceAll(rest, p, " ")
		}
	}
	return found && (!suspect || len(strings.Fields(rest)) <= 3)
}

// person gives the clinic's number and opening hours, offers a call back,
// then repeats the open question so the patient can carry on.
func (s *step) person(prefix []string) {
	hours := ""
	if h := s.openingHours(); h != "" {
		hours = strings.ReplaceAll(s.text("person_hours"), "{hours}", h)
	}
	body := strings.TrimSpace(strings.ReplaceAll(s.text("person"), "{hours}", hours))
	s.send(KindReply, strings.Join(append(prefix, body), "\n\n"), []Choice{{ID: callbackChoice, Label: s.text("callback_button")}})
	s.st.AskedPerson = s.now
	s.audit("asked_for_person", "")
	s.reask("")
}

// callback puts the patient's call-back request in front of staff: a watch
// alert, so it is seen and acknowledged like any other.
func (s *step) callback() {
	s.alertStaff(Watch, []string{"callback_request"}, "", "", "Asked to be called back.")
	s.reply(s.text("callback_done"))
	s.reask("")
}

// openingHours lists the clinic's opening hours in the patient's language,
// grouping days with the same hours ("Mon-Fri 09:00-17:00, Sat
// 09:00-13:00"), or "" when the clinic gave none.
func (s *step) openingHours() string {
	hs := s.e.clinic.Hours
	if len(hs) == 0 {
		return ""
	}
	days := s.p.Calendar.Days
	var parts []string
	order := []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday, time.Sunday}
	for i := 0; i < len(order); {
		h, ok := hs[order[i]]
		if !ok {
			i++
			continue
		}
		j := i
		for j+1 < len(order) {
			h2, ok2 := hs[order[j+1]]
			if !ok2 || h2 != h {
				break
			}
			j++
		}
		span := days[order[i]]
		if j > i {
			span += "-" + days[order[j]]
		}
		parts = append(parts, fmt.Sprintf("%s %02d:%02d-%02d:%02d", span, h[0]/60, h[0]%60, h[1]/60, h[1]%60))
		i = j + 1
	}
	return strings.Join(parts, ", ")
}
