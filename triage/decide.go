package triage

import (
	"slices"

	"github.com/aftercare-clinic/aftercare/engine"
)

// spanNum returns the value of the first number in a span.
func (sc *scratch) spanNum(s *span) (float64, bool) {
	pos := sc.pos[s.posOff : s.posOff+s.posN]
	for k, t := range pos {
		tk := &sc.toks[t]
		if !tk.isNum {
			continue
		}
		if tk.kind == tWord && k+1 < len(pos) && pos[k+1] == t+1 && sc.toks[t+1].kind == tNum {
			// "es un 9": the article, not the number.
			continue
		}
		return tk.num, true
	}
	return 0, false
}

// scoreMention turns the last score of one kind in the message into a
// mention of the entry its band names, when the sentence gives the number
// its meaning (a pain word for a pain score) or the whole message is little
// more than the number, as in a check-in answer "8/10".
func (rs *ruleset) scoreMention(sc *scratch, si int) (int32, bool) {
	s := &sc.spans[si]
	sco := &rs.scores[s.arg]
	v, ok := sc.spanNum(s)
	if !ok {
		return 0, false
	}
	if sco.needCtx {
		// The score's own clause decides first ("no pain, 10/10 would
		// recommend"), then its sentence, then whether the message is
		// little more than the number.
		var cCtx, cNot, sCtx, sNot bool
		dCtx, dNot := 1<<30, 1<<30 // distance of the nearest word in the clause
		words := sc.words
		lo, hi := int(s.start), int(s.start)
		for lo > 0 && sc.toks[lo-1].sent == s.sent && int(s.start)-lo < maxScope {
			lo--
		}
		for hi < len(sc.toks) && sc.toks[hi].sent == s.sent && hi-int(s.start) < maxScope {
			hi++
		}
		for i := lo; i < hi; i++ {
			tk := &sc.toks[i]
			for _, id := range sc.lex[tk.lexOff : tk.lexOff+tk.lexN] {
				d := i - int(s.start)
				if d < 0 {
					d = -d
				}
				if sco.ctx[id] {
					sCtx = true
					if tk.clause == s.clause {
						cCtx, dCtx = true, min(dCtx, d)
					}
				}
				if sco.not[id] {
					sNot = true
					if tk.clause == s.clause {
						cNot, dNot = true, min(dNot, d)
					}
				}
			}
		}
		switch {
		case cNot && cCtx && dCtx <= dNot:
			// "pain 10/10 can't sleep": the nearer word says what it scores.
		case cNot:
			return 0, false
		case cCtx, sCtx && !sNot:
		case sNot || words > sco.bareMax:
			return 0, false
		}
	}
	for _, b := range sco.bands {
		if v >= b.min && v <= b.max {
			return b.entry, true
		}
	}
	return 0, false
}

// aheadReach is how many tokens may sit between a resolved_ahead phrase and
// the complaint it reads ("se me pasó el dolor": one article).
const aheadReach = 2

// recentSentence reports whether sentence sent says what it tells is recent
// ("fainted twice this evening, once in the bathroom"): a weak past marker
// such as "once" then counts the times instead of dating the story.
func (sc *scratch) recentSentence(sent int32) bool {
	for i := range sc.toks {
		if t := &sc.toks[i]; t.sent == sent && t.flags&fRecent != 0 {
			return true
		}
	}
	return false
}

// decide turns the scoped spans into a Finding.
func (rs *ruleset) decide(sc *scratch, hours float64) engine.Finding {
	sp := sc.spans
	textHours := -1.0
	affirmed := false
	hearsay, asked, disclaim, normalCheck := false, false, false, false
	for i := range sc.toks {
		if sc.toks[i].flags&fAsked != 0 {
			asked = true
			break
		}
	}
	sc.lastScore = sc.lastScore[:0]
	for range rs.scores {
		sc.lastScore = append(sc.lastScore, -1)
	}
	for i := range sp {
		s := &sp[i]
		switch s.role {
		case rAffirm:
			affirmed = affirmed || !s.neg
		case rHearsay:
			hearsay = hearsay || !s.neg
		case rDisclaim:
			disclaim = disclaim || !s.hypo
		case rNormalCheck:
			normalCheck = normalCheck || (!s.neg && !s.hypo)
		case rHypo, rQuestion:
			asked = true
		case rTime:
			if s.neg || s.hypo {
				continue
			}
			p := &rs.patterns[s.p]
			h := p.hours + p.offset
			if v, ok := sc.spanNum(s); ok {
				h = v*p.hours + p.offset
			}
			if h > textHours {
				textHours = h
			}

		case rSign:
			sc.ments = append(sc.ments, mention{span: int32(i), e: s.arg, start: s.start, end: s.end, clause: s.clause})
		case rMod:
			if !s.neg && !s.hypo && !sc.insideSign(i) {
				sc.mods = append(sc.mods, modRef{span: int32(i), cat: int(s.arg &^ modAhead), start: s.start, end: s.end, ahead: s.arg&modAhead != 0})
			}
		case rPastOther:
			// "my colleague had a seizure once" is her history; "I feel
			// faint and fell once today" is the patient's report.
			if !s.neg && !s.hypo && s.subj != subjSelf && !sc.recentSentence(s.sent) {
				sc.mods = append(sc.mods, modRef{span: int32(i), cat: catPast, start: s.start, end: s.end})
			}
		}
	}
	if textHours > hours {
		hours = textHours
	}
	// The last score of each kind that reads as one counts ("from 9/10 to
	// 3/10"); only the last few are tried, so a wall of numbers stays cheap.
	tries := 0
	for i := len(sp) - 1; i >= 0 && tries < 16; i-- {
		s := &sp[i]
		if s.role != rScore || s.hypo || s.neg || sc.lastScore[s.arg] >= 0 {
			continue
		}
		tries++
		if _, ok := rs.scoreMention(sc, i); ok {
			sc.lastScore[s.arg] = i
		}
	}
	added := false
	for _, si := range sc.lastScore {
		if si < 0 {
			continue
		}
		if e, ok := rs.scoreMention(sc, si); ok {
			s := &sp[si]
			sc.ments = append(sc.ments, mention{span: int32(si), e: e, start: s.start, end: s.end, clause: s.clause})
			added = true
		}
	}
	if added {
		slices.SortFunc(sc.ments, func(a, b mention) int { return int(a.start - b.start) })
	}
	if len(sc.ments) == 0 {
		return engine.Finding{Level: engine.None}
	}
	strays := 0
	for k := range sc.mods {
		if !rs.attach(sc, &sc.mods[k]) && (sc.mods[k].cat == catPersistent || sc.mods[k].cat == catWorse) {
			strays++ // reached no complaint: what goes on was not read
		}
	}

	// Level of each mention.
	top := engine.None
	for k := range sc.ments {
		m := &sc.ments[k]
		s := &sp[m.span]
		if s.neg || s.hypo || s.subj == subjNone || (disclaim && s.subj != subjSelf) {
			continue
		}
		m.live = true
		e := &rs.entries[m.e]
		lv := &e.adult
		if s.subj == subjChild {
			lv = &e.child
		}
		has := func(c int) bool { return m.mods&(1<<c) != 0 }
		if ((s.fig&figIdiom != 0 && e.figurative) || (s.fig&figExcite != 0 && e.excitement)) && !has(catSevere) && !has(catPersistent) && !has(catWorse) && !has(catRecurring) {
			// A figure of speech ("laughed so hard I couldn't breathe",
			// "my heart skipped when I saw the bill"): no report, unless
			// the patient says it is severe or lasting.
			m.live = false
			continue
		}
		if e.plan && sc.hypoSentence(s.sent) {
			m.live = false
			continue
		}
		var L engine.Level
		amb := false
		// lasting: the level comes from the complaint going on ("still",
		// "no better", day 3), which asking "is it normal?" does not undo.
		lasting := false
		switch {
		case has(catPast) && !has(catWorse) && !has(catPersistent) && !has(catRecurring):
			// Long before this treatment ("years ago", "as a child"): the
			// patient's history, not a report.
			L, m.resolved, m.historical = lv[catPast], true, true
		case has(catHistorical) && !has(catWorse) && !has(catPersistent) && !has(catRecurring) && (!has(catSevere) || lv[catBase] == engine.None):
			// Severity dated before or during the session counts for a
			// red flag ("a horrible headache before the session") but not
			// for an after-effect ("it hurt like hell during the needle
			// twitch, nothing since").
			L, m.resolved, m.historical = lv[catHistorical], true, true
		case has(catResolved):
			L, m.resolved = lv[catResolved], true
		case has(catPleasant) && !has(catWorse) && !has(catPersistent) && (!has(catSevere) || lv[catBase] == engine.None):
			// An after-effect called intense "in a good way" keeps its
			// pleasant level too.
			// "tingly in a nice relaxed way": a sensation the patient
			// describes as pleasant is the expected kind, for the signs
			// whose level table says so, also while it fades.
			L = lv[catPleasant]
			m.pleasant = L == engine.None && lv[catBase] > engine.None
			if has(catImproving) {
				L, m.improving = min(L, lv[catImproving]), true
			}
		case has(catImproving) && !has(catWorse):
			L, m.improving = lv[catImproving], true
		default:
			L = lv[catBase]
			if has(catMild) {
				L = lv[catMild]
			}
			raised := false
			for _, c := range [...]int{catVery, catSevere, catPersistent, catWorse, catRecurring} {
				if has(c) {
					raised = true
					if lv[c] > L && (c == catPersistent || c == catWorse) {
						lasting = true
					}
					L = max(L, lv[c])
				}
			}
			if e.later && has(catMild) && has(catWorse) && !has(catVery) && !has(catSevere) && lv[catBase] == engine.None && hours < e.laterHours {
				// "a little more sore today than yesterday" in the first
				// day or two is the expected worse-before-better.
				L, raised = lv[catMild], false
			}
			if e.later && hours >= e.laterHours && !has(catImproving) && (!has(catMild) || has(catPersistent) || has(catWorse) || has(catVery) || has(catSevere)) {
				// A mild after-effect the patient does not call lasting
				// ("just a little tired") is not the persisting kind.
				if e.laterLevel > L {
					raised, lasting = true, true
				}
				L = max(L, e.laterLevel)
			}
			amb = !raised
			if has(catMild) && has(catPersistent) && !has(catVery) && !has(catSevere) && !has(catWorse) && lv[catBase] < engine.Urgent && !(e.later && hours >= e.laterHours) {
				// "slight headache since this morning": a mild complaint
				// of a kind that is not itself a red flag stays at its
				// mild level for a day or so; past the sign's own
				// lingering time ("still hurts a week later, not bad")
				// it is the lingering kind.
				L = max(lv[catMild], min(L, lv[catMild]))
			}
			if normalCheck && has(catMild) && !has(catVery) && !has(catSevere) && !has(catWorse) && !has(catPersistent) {
				// "a bit tingly, is that normal?": a mild sensation the
				// patient asks about takes the sign's "checked" level
				// (the base level unless the rules lower it).
				L = min(L, lv[catChecked])
			}
		}
		if (s.subj == subjAcq && hearsay && asked) || (s.subj != subjSelf && m.historical) {
			// "my friend said she fainted once, is that common?", "my mom
			// fainted once years ago": a story about someone who is not
			// the patient, not a report. Someone present now ("my son is
			// shaking") still counts.
			m.live = false
			continue
		}
		if e.history && L == engine.None {
			m.historical, m.resolved = true, true
		}
		m.orig = L
		if s.question && !affirmed && L > engine.None {
			// "Is it normal to ...?" usually comes from someone who feels it.
			// A red flag asked about this way is lowered one step and comes
			// with a question whose "yes" restores it.
			if L >= engine.Urgent {
				switch {
				case e.ask != nil && amb:
					m.ask, m.askable = e.ask, true
				case e.askNow != nil:
					m.askNow, m.askable = true, true
				}
				if m.askable {
					L--
				}
			} else if !lasting || L != engine.Watch {
				L--
			}
		} else if amb && e.ask != nil && L > engine.None && L < engine.Emergency {
			m.ask, m.askable = e.ask, true
		}
		m.level = L
		top = max(top, L)
	}

	// Combinations (dizzy and sick) are definite, never asked about.
	comboTop := engine.None
	for _, c := range rs.combos {
		if c.level <= comboTop {
			continue
		}
		all := true
		for _, name := range c.signs {
			found := false
			for k := range sc.ments {
				m := &sc.ments[k]
				if m.live && !m.resolved && (!sp[m.span].question || affirmed) && rs.entries[m.e].sign == name {
					found = true
					break
				}
			}
			if !found {
				all = false
				break
			}
		}
		if all {
			comboTop = c.level
		}
	}
	top = max(top, comboTop)

	f := engine.Finding{Level: top}
	for k := range sc.ments {
		if m := &sc.ments[k]; !m.live || ((m.resolved || m.improving || m.pleasant) && m.level == engine.None) {
			f.Settled++ // negated, asked about, past or someone else's
		}
	}
	var askFrom *mention
	definite := comboTop == top && top > engine.None
	for k := range sc.ments {
		m := &sc.ments[k]
		if !m.live {
			continue
		}
		if m.level == top {
			if m.askable {
				if askFrom == nil {
					askFrom = m
				}
			} else {
				definite = true
			}
		}
		// Signs name what the patient has or had since the session; a
		// complaint from before it, or one now gone that the rules set at
		// no level ("the headache went away"), is not one, nor is a
		// sensation the patient calls pleasant that the rules set at no
		// level ("tingly in a nice relaxed way").
		if (!m.historical && !m.resolved && !m.improving && !m.pleasant) || m.level > engine.None {
			name := rs.entries[m.e].sign
			if !slices.Contains(sc.signs, name) {
				sc.signs = append(sc.signs, name)
			}
		}
	}
	if len(sc.signs) > 0 {
		f.Signs = sc.signs // the scratch's own: Triage hands out a shared copy
	} else if f.Settled > 0 {
		// "sin hinchazón ni fiebre, solo que no se quita": every
		// mention read is settled, yet the patient says, in a clause of
		// its own that reaches no mention, that something goes on or
		// grows. What goes on was not read, so the message is no
		// all-clear: a denied list of other signs, or "not bad", cannot
		// stand for the whole of it.
		sc.stray = strays
	}
	// Who the report is about: the first mention at the top level.
	for k := range sc.ments {
		m := &sc.ments[k]
		if m.live && (m.level == top || top == engine.None) {
			f.Subject = subjNames[sp[m.span].subj]
			break
		}
	}
	if !definite && askFrom != nil && top > engine.None && top < engine.Emergency {
		if askFrom.askNow {
			an := rs.entries[askFrom.e].askNow
			f.Ask = &engine.Clarify{Text: an.Text, Choices: []engine.ClarifyChoice{
				{ID: "yes", Label: an.Yes, Level: askFrom.orig},
				{ID: "no", Label: an.No, Level: engine.None},
			}}
		} else {
			q := *askFrom.ask
			q.Choices = slices.Clone(q.Choices)
			f.Ask = &q
		}
	}
	return f
}

// insideSign reports whether a lowering modifier (span i) sits inside the
// gap of a sign phrase, where it is part of what the sign says:
// "breathing's gone all shallow" is not a breathing problem that has gone.
func (sc *scratch) insideSign(i int) bool {
	md := &sc.spans[i]
	if md.arg != catResolved && md.arg != catImproving {
		return false
	}
	for j := i - 1; j >= 0 && sc.spans[j].start >= md.start-maxElems*(wideGap+1); j-- {
		s := &sc.spans[j]
		if s.role == rSign && s.first < md.start && md.end <= s.lastL {
			return true
		}
	}
	return false
}

// attach gives a modifier to the mentions it describes. Words that raise a
// level ("getting worse", "still") reach every mention of their clause;
// words that lower it ("a little", "passed") reach only the nearest one, so
// a lowering word never quietly hides a second sign. A modifier alone in its
// clause ("..., but it passed") refers back to the previous clause with a
// mention, if what precedes it in its own clause is only filler ("but it").
func (rs *ruleset) attach(sc *scratch, md *modRef) bool {
	sp := sc.spans
	ments := sc.ments
	cl := sp[md.span].clause
	bit := uint16(1) << md.cat
	raise := md.cat == catPersistent || md.cat == catWorse || md.cat == catRecurring
	// A time frame long past ("years ago", "last year") dates its whole
	// clause, like a raising word: "my wife fainted at her blood test last
	// year" is history for the faint too, not only for the blood.
	// Only for someone else's story: for the patient's own report a
	// lowering word reaches the nearest mention alone ("I feel faint and I
	// fell once today" is still a faint).
	frame := (md.cat == catPast || md.cat == catHistorical) && sp[md.span].subj != subjSelf
	lower := md.cat == catMild || md.cat == catImproving || md.cat == catHistorical || md.cat == catResolved || md.cat == catPast
	// Mentions are ordered by start, so clause numbers rise with them.
	lo, _ := slices.BinarySearchFunc(ments, cl, func(m mention, c int32) int { return int(m.clause - c) })
	hi := lo
	for hi < len(ments) && ments[hi].clause == cl {
		hi++
	}
	if hi > lo {
		if raise || frame {
			for k := lo; k < hi; k++ {
				ments[k].mods |= bit
			}
			return true
		}
		best, bestD := -1, int32(1<<30)
		for k := lo; k < hi; k++ {
			m := &ments[k]
			var d int32
			switch {
			case m.end <= md.start:
				d = md.start - m.end
			case m.start >= md.end:
				if md.cat == catResolved && (!md.ahead || m.start-md.end > aheadReach) {
					// "gone" looks back; "se me pasó" may also read the
					// complaint right after it ("se me pasó el mareo").
					continue
				}
				d = m.start - md.end
			}
			if d < bestD || (d == bestD && m.start >= md.end) {
				best, bestD = k, d
			}
		}
		if best >= 0 {
			ments[best].mods |= bit
			// Mentions that overlap or touch it read one phrase, so they
			// are the same complaint ("shooting pain down my leg has
			// stopped", "the zapping pain ... is gone").
			lo2, hi2 := ments[best].start, ments[best].end
			for changed := true; changed; {
				changed = false
				for k := lo; k < hi; k++ {
					m := &ments[k]
					if m.mods&bit == 0 && m.start <= hi2 && m.end >= lo2 {
						m.mods |= bit
						lo2, hi2 = min(lo2, m.start), max(hi2, m.end)
						changed = true
					}
				}
			}
			return true
		}
	}
	// "dizzy standing up, but sat back down and it passed", "I threw up,
	// but that was before the session": a word saying the complaint is
	// over or dates it, alone in its clause, looks back to the complaint
	// before it in the same sentence, whatever was done meanwhile; the
	// sign's own level for it decides what remains.
	over := (md.cat == catResolved || md.cat == catHistorical) && lo > 0 && sp[ments[lo-1].span].sent == sp[md.span].sent
	if lower && !frame && !over && !sc.onlyFiller(md.start, cl) {
		return false
	}
	if md.cat == catMild && !sc.onlyFillerAfter(md.end, cl) {
		// "kinda annoying", "a bit worried": the mild word is about what
		// follows it, not the complaint before.
		return false
	}
	// Orphan: the previous clause that has mentions. A time frame reaches
	// back only within its sentence ("my uncle passed out during his
	// session in the 90s"). A raising word reaches back when the rest of
	// its clause before or after it is filler ("It's been getting worse",
	// "still there"), not when its clause says something else ("since the
	// needling my achilles feels amazing").
	if lo == 0 || (frame && sp[ments[lo-1].span].sent != sp[md.span].sent) {
		return false
	}
	if raise && !sc.onlyFillerBefore(md.start, cl) && !sc.onlyFillerAfter(md.end, cl) {
		return false
	}
	if !raise && !lower && !sc.onlyFillerAfter(md.end, cl) {
		// A severity word reaches back only when it ends its clause ("so
		// bad"), not as the adjective of something else ("had a big
		// glass of water").
		return false
	}
	prev := ments[lo-1].clause
	reached := false
	for k := lo - 1; k >= 0 && ments[k].clause == prev; k-- {
		ments[k].mods |= bit
		reached = reached || !sp[ments[k].span].neg
	}
	// A word reaching back only to denied signs ("no fever, no
	// swelling, but it won't go away") speaks of a complaint not read.
	return reached
}

// onlyFiller reports whether every token of clause cl before position t is
// filler ("but it", "and then I feel").
func (sc *scratch) onlyFiller(t int32, cl int32) bool {
	for i := t - 1; i >= 0; i-- {
		tk := &sc.toks[i]
		if tk.clause != cl {
			return true
		}
		if tk.kind == tComma || tk.flags&fFiller != 0 {
			continue
		}
		if tk.claim > 0 {
			if r := sc.spans[tk.claim-1].role; r == rTerm || r == rFirst || r == rPseudo || r == rPronoun || r == rChild || r == rOther || r == rAcq || r == rHearsay {
				continue
			}
		}
		return false
	}
	return true
}

// hypoSentence reports whether sentence se holds a hypothetical or a
// conditional ("what should I do if", "if I get"): a call for help in it is
// part of the question about what to do.
func (sc *scratch) hypoSentence(se int32) bool {
	for i := range sc.spans {
		s := &sc.spans[i]
		if s.sent > se {
			break
		}
		if s.sent == se && (s.role == rHypo || s.role == rCond) && !s.neg {
			return true
		}
	}
	return false
}

// onlyFillerAfter reports whether every token of clause cl from position t
// on is filler, punctuation or part of a modifier or time phrase.
func (sc *scratch) onlyFillerAfter(t int32, cl int32) bool {
	for i := int(t); i < len(sc.toks); i++ {
		tk := &sc.toks[i]
		if tk.clause != cl {
			return true
		}
		if tk.kind == tComma || tk.kind == tStop || tk.flags&fFiller != 0 || tk.timeClaim {
			continue
		}
		if tk.claim > 0 {
			if r := sc.spans[tk.claim-1].role; r == rMod || r == rTerm || r == rFirst || r == rPseudo || r == rPronoun {
				continue
			}
		}
		return false
	}
	return true
}

// onlyFillerBefore is onlyFiller that also passes over other modifiers ("a
// little worse").
func (sc *scratch) onlyFillerBefore(t int32, cl int32) bool {
	for i := t - 1; i >= 0; i-- {
		tk := &sc.toks[i]
		if tk.clause != cl {
			return true
		}
		if tk.kind == tComma || tk.flags&fFiller != 0 || tk.timeClaim {
			continue
		}
		if tk.claim > 0 {
			if r := sc.spans[tk.claim-1].role; r == rMod || r == rTerm || r == rFirst || r == rPseudo || r == rPronoun {
				continue
			}
		}
		return false
	}
	return true
}
