package engine

import (
	"strconv"
	"strings"
)

// message handles a patient's message or button press. Triage comes first,
// whatever question is open: a red flag interrupts everything. What the
// engine cannot fully account for ends in the safety-net question, never in
// "didn't get that" or in reassurance (see safetynet.go).
func (s *step) message(raw, choice string) {
	text, cut := Sanitize(raw)
	if len(choice) > 64 {
		choice = "" // not one of ours
	}
	choice, _ = Sanitize(choice)
	// A button press answers its question: its label is our own wording,
	// not the patient's, so it is not read by triage ("Stiff or sore" is
	// an answer, not a report of instability). A choice's own level still
	// counts where the question gives it one.
	label := ""
	if choice != "" {
		label = s.choiceLabel(choice)
	}
	pressed := label != "" && (text == "" || text == label)
	if text == "" && choice != "" {
		text = label
	}
	s.st.LastActive = s.now
	n := norm(text)

	if choice == callbackChoice && (text == "" || pressed || text == s.text("callback_button")) {
		s.callback()
		return
	}
	if text == "" && choice != "" {
		// A button of a question that is no longer open.
		s.reply(s.text("not_an_answer"))
		s.reask("")
		return
	}
	if text == "" {
		if q, ok := s.question(s.st.Step); s.st.Clarify != nil || (ok && len(q.Choices) > 0) {
			s.reply(s.text("empty"))
			s.reask("")
		} else {
			// No choices to tap: don't mention any.
			s.reply(s.text("empty_no_question"))
			s.reask("")
		}
		return
	}
	var prefix []string
	if !s.st.Greeted {
		s.st.Greeted = true
		prefix = append(prefix, s.text("greeting"))
	}
	if cut {
		prefix = append(prefix, s.text("too_long"))
	}

	if !pressed && s.askedLanguage(raw) != "" {
		s.switchedLanguage(prefix)
		return
	}
	var f Finding
	if !pressed {
		// The whole message is read, before any cut: a red flag at the
		// end of a long letter still counts.
		f = s.e.triage.Triage(raw, s.hours())
	}
	if f.Level == Emergency || (f.Level >= Urgent && f.Ask == nil) {
		s.flush(prefix)
		s.escalate(f.Level, f.Signs, f.Subject, text, "")
		s.abortFlow("escalated")
		return
	}
	if s.st.Clarify != nil {
		if id, l, ok := s.answerClarify(n, choice); ok {
			s.flush(prefix)
			s.resolveClarify(id, l)
			return
		}
	}
	if f.Ask != nil {
		s.flush(prefix)
		s.startClarify(f, text)
		return
	}
	if s.command(n, prefix) {
		return
	}
	if !pressed && f.Level == None && s.wantsPerson(n, f.Suspect) {
		s.person(prefix)
		return
	}
	if f.Suspect && !pressed && !s.plainAnswer(n, f) {
		s.flush(prefix)
		s.safetyNet(f, text)
		return
	}
	if s.st.Step != StepNone && s.answer(n, choice, text, f, prefix) {
		return
	}
	// Not an answer to the open question (or none is open).
	if f.Level == Watch {
		s.flush(prefix)
		s.escalate(Watch, f.Signs, f.Subject, text, "")
		s.reask("")
		return
	}
	wantsReadiness := s.readinessIntent(n)
	faq := s.faq(n)
	small := s.smallTalk(n, text, f)
	if s.st.Visit == nil && s.st.Draft == nil && !s.st.Stopped && (wantsReadiness || faq != "" || small != "" || s.benignOnly(f)) {
		// Nothing is known about the session yet: ask first.
		if wantsReadiness {
			s.st.Then = "readiness"
		} else if faq != "" {
			prefix = append(prefix, faq)
		}
		s.startIntake(prefix)
		return
	}
	switch {
	case wantsReadiness && !s.st.Step.inIntake():
		s.flush(prefix)
		s.startReadiness()
		return
	case wantsReadiness:
		s.st.Then = "readiness"
		s.reply(append(prefix, s.text("after_intake_note"))...)
	case faq != "":
		s.reply(append(prefix, faq)...)
	case s.benignOnly(f):
		s.flush(prefix)
		s.reassure(f.Signs)
	case small == "hello":
		if s.st.Visit != nil && s.st.Step == StepNone {
			s.reply(append(prefix, s.greetingKnown())...)
			return
		}
		s.flush(prefix)
	case small == "unsure" && s.st.Step != StepNone:
		s.reply(append(prefix, s.text("not_an_answer"))...)
	case small != "":
		s.reply(append(prefix, s.text(small))...)
	case len(f.Signs) == 0 && s.isQuestion(n, text):
		s.reply(append(prefix, s.text("cannot_answer"))...)
	case s.allClear(f):
		s.reply(append(prefix, s.text("good_news"))...)
	case f.Quiet:
		// Nothing in it resembles a sign (logistics, chat): a plain answer
		// that still gives both numbers.
		s.reply(append(prefix, s.text("noted"))...)
	default:
		// Nothing here could be accounted for: never dismiss it.
		s.flush(prefix)
		s.safetyNet(f, text)
		return
	}
	s.reask("")
}

// flush sends pending prefix texts (greeting, too-long notice) as one reply.
func (s *step) flush(prefix []string) {
	if len(prefix) > 0 {
		s.reply(prefix...)
	}
}

func (s *step) greetingKnown() string {
	v := s.st.Visit
	area := v.Area
	if area == "" {
		area = s.text("treated_area")
	}
	var times string
	if ts := s.upcoming(); len(ts) > 0 && !s.st.Stopped && s.st.Consent == "yes" {
		times = s.joinTimes(ts)
	} else {
		return strings.Join([]string{s.text("hello")}, "")
	}
	return strings.NewReplacer("{treatment}", s.p.treatmentLabel(v.Treatment), "{area}", area, "{since}", fmtHours(s.hours()), "{checkin_times}", times).Replace(s.text("greeting_known"))
}

// intent reports whether the whole message is one of the intent's phrases
// ("stop", "thanks"). Whole-message matching keeps "the pain won't stop"
// from unsubscribing anyone.
func (s *step) intent(n, name string) bool {
	t := strings.TrimSpace(n)
	t = strings.TrimSpace(strings.Trim(t, "?! "))
	if t != "" && s.p.intentSet[name][t] {
		return true
	}
	// "?" alone trims to nothing above; the list may name it.
	return s.p.intentQ[name] && strings.TrimSpace(n) == "?"
}

// command handles STOP, START and HELP.
func (s *step) command(n string, prefix []string) bool {
	switch {
	case s.intent(n, "stop"):
		s.st.Stopped = true
		s.abortFlow("unanswered")
		s.reply(append(prefix, s.text("stopped"))...)
		s.audit("stopped", "")
		return true
	case s.intent(n, "start") || (s.st.Stopped && strings.TrimSpace(n) == "/start"):
		if !s.st.Stopped && s.st.Consent == "no" && s.st.Visit != nil {
			s.st.Consent = "yes"
			s.scheduleCheckins()
			s.audit("consent", "yes")
			s.reply(append(prefix, s.checkinTimesText("intake_done"))...)
			return true
		}
		if !s.st.Stopped {
			if s.st.Visit == nil && s.st.Draft == nil {
				s.startIntake(prefix)
				return true
			}
			s.reply(append(prefix, s.text("already_started"))...)
			s.reask("")
			return true
		}
		s.st.Stopped = false
		s.st.Consent = "yes"
		s.scheduleCheckins()
		s.audit("started", "")
		// Check-ins whose time passed while stopped are not sent late.
		if s.st.Visit == nil {
			s.startIntake(append(prefix, s.text("started")))
			return true
		}
		if len(s.upcoming()) > 0 {
			// One sentence, not two stock lines glued together.
			s.reply(append(prefix, s.checkinTimesText("started_times"))...)
			return true
		}
		s.reply(append(prefix, s.text("started"), s.text("intake_done_no_checkins"))...)
		return true
	case s.intent(n, "forget"):
		s.flush(prefix)
		s.ask(StepForget, KindReply)
		return true
	case s.intent(n, "help"):
		s.reply(append(prefix, s.text("help"))...)
		s.reask("")
		return true
	case strings.HasPrefix(strings.TrimSpace(n), "/start "):
		// "/start" is a command the engine knows (above: it restarts a
		// stopped conversation). With words after it that no adapter
		// presented as an invite (Event.Invite: a mistyped or cut-off
		// code), it is the patient's text: triage has read it first, as
		// every message, and the answer is the one for a link that did
		// not work.
		s.reply(append(prefix, s.text("invite_unknown"))...)
		if s.st.Visit == nil && s.st.Draft == nil {
			s.startIntake(nil)
		}
		return true
	}
	return false
}

// reask repeats the open question, so the patient knows where they are.
func (s *step) reask(prefix string) {
	if s.st.Step == StepNone || s.st.Clarify != nil {
		return
	}
	q, ok := s.question(s.st.Step)
	if !ok {
		s.st.Step = StepNone
		return
	}
	p := s.text("reask_prefix")
	if prefix != "" {
		p = prefix
	}
	s.send(KindReply, p+" "+q.Text, choices(q))
}

// ask sends a question and makes it the open step.
func (s *step) ask(stepID StepID, kind Kind, intro ...string) {
	q, ok := s.question(stepID)
	if !ok {
		s.st.Step = StepNone
		return
	}
	s.st.Step = stepID
	s.send(kind, strings.Join(append(intro, q.Text), "\n\n"), choices(q))
}

// question finds the question of a step ID.
func (s *step) question(stepID StepID) (Question, bool) {
	p := s.p
	kind, idx := stepID.flow()
	if stepID == StepCheckinGate {
		return p.Checkin.SignsGate, p.Checkin.SignsGate.Text != ""
	}
	switch kind {
	case "intake":
		switch idx {
		case "when":
			return p.Intake.When, true
		case "treatment":
			return p.Intake.Treatment, true
		case "area":
			return p.Intake.Area, true
		case "acute":
			return p.Intake.Acute, true
		case "child":
			return p.Intake.Child, true
		case "consent":
			return p.Intake.Consent, true
		}
	case "forget":
		return p.Forget, true
	case "readiness", "checkin":
		i, err := strconv.Atoi(idx)
		qs := p.Readiness.Questions
		if kind == "checkin" {
			qs = p.Checkin.Questions
		}
		if err == nil && i >= 0 && i < len(qs) {
			return qs[i], true
		}
	}
	return Question{}, false
}

func (s *step) choiceLabel(id string) string {
	if strings.HasPrefix(id, "clarify:") && s.st.Clarify != nil {
		for _, c := range s.st.Clarify.Ask.Choices {
			if "clarify:"+c.ID == id {
				return c.Label
			}
		}
	}
	if q, ok := s.question(s.st.Step); ok {
		if i := findChoice(q.Choices, id); i >= 0 {
			return q.Choices[i].Label
		}
	}
	if s.st.Step == StepCheckinGate {
		// A button of the full list of warning signs still counts.
		if q, k := s.signsQuestion(); k >= 0 {
			if i := findChoice(q.Choices, id); i >= 0 {
				return q.Choices[i].Label
			}
		}
	}
	return ""
}

// match finds the choice a free-text or button answer picks, or -1.
func match(q Question, n, choice string, pr *Protocol) int {
	if choice != "" {
		return findChoice(q.Choices, choice)
	}
	t := strings.TrimSpace(n)
	if q.Scale != nil {
		if v, ok := ParseScore(n, q.Scale.Min, q.Scale.Max); ok {
			return findChoice(q.Choices, strconv.Itoa(v))
		}
		return -1
	}
	for i, c := range q.Choices {
		if t == strings.TrimSpace(norm(c.Label)) || t == strings.TrimSpace(norm(c.ID)) {
			return i
		}
	}
	best, bestLen, tie := -1, 0, false
	for i, c := range q.Choices {
		l := max(phraseScore(n, []string{c.Label}, pr), phraseScore(n, c.Keywords, pr))
		if l > bestLen {
			best, bestLen, tie = i, l, false
		} else if l == bestLen && l > 0 {
			tie = true
		}
	}
	if tie {
		return -1
	}
	return best
}

// answer applies the message to the open question. It returns false when
// the message is not an answer, so the caller handles it otherwise.
func (s *step) answer(n, choice, text string, f Finding, prefix []string) bool {
	kind, idx := s.st.Step.flow()
	q, ok := s.question(s.st.Step)
	if !ok {
		s.st.Step = StepNone
		return false
	}
	if choice == "" && (strings.Contains(n, "?") || s.readinessIntent(n)) && (s.readinessIntent(n) || s.faq(n) != "") && q.Scale == nil {
		return false // a question of the patient's own, not an answer
	}
	i := match(q, n, choice, s.p)
	switch kind {
	case "intake":
		return s.intakeAnswer(idx, q, i, n, text, prefix)
	case "readiness":
		if i < 0 {
			return false
		}
		s.flush(prefix)
		s.readinessAnswer(idx, q, i, f)
		return true
	case "forget":
		if i < 0 {
			return false
		}
		if q.Choices[i].ID == "yes" {
			s.res.Erase = true
			// Greeted is reset too: the next conversation starts afresh, with
			// the greeting and its "not an emergency service" line.
			s.st = State{Patient: s.st.Patient, Current: -1, Handled: s.st.Handled}
			s.reply(s.text("forget_done"))
			return true
		}
		s.st.Step = StepNone
		s.reply(append(prefix, s.text("forget_kept"))...)
		return true
	case "checkin":
		if s.st.Step == StepCheckinGate {
			return s.gateAnswer(q, i, n, choice, text, f, prefix)
		}
		if i < 0 && q.ID == "signs" && f.Level == None && len(f.Signs) > 0 {
			i = findChoice(q.Choices, "none") // a normal after-effect is "none of these"
		}
		if i < 0 {
			return false
		}
		s.flush(prefix)
		s.checkinAnswer(idx, q, i, f, text)
		return true
	}
	return false
}

// ---- intake ----

// ---- readiness ----

// ---- check-ins ----

// ---- FAQ ----
