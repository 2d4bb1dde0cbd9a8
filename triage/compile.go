package triage

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/aftercare-clinic/aftercare/engine"
)

// role is what a matched phrase does in a message.
type role uint8

const (
	rSign        role = iota // a sign; arg is the entry index
	rMod                     // a severity or time modifier; arg is the category
	rNeg                     // negation trigger, scope forward ("no", "denies")
	rNegPost                 // negation trigger, scope backward ("none")
	rPseudo                  // looks like a trigger but is not ("not sure", "no increase")
	rHypo                    // hypothetical, scope to the end of the clause ("what if")
	rCond                    // conditional, short scope ("if")
	rQuestion                // asks whether a sign is normal ("is it normal to")
	rTerm                    // scope terminator ("but", "however")
	rChild                   // the message is about the patient's child ("my son")
	rOther                   // ... about another adult ("my husband")
	rPronoun                 // "he", "she": whoever was named last, else someone else
	rFirst                   // back to the patient ("I", "me")
	rTime                    // a time expression; hours/offset say how long
	rScore                   // a number in context: a pain score such as 8/10, a temperature
	rAffirm                  // confirms a question was about the patient ("because I just did")
	rAcq                     // an acquaintance ("my friend", "a guy at work"): counts unless hearsay or past
	rNotPatient              // not a person the clinic treats ("my dog"): mentions are dropped
	rHearsay                 // reported speech ("told me", "apparently")
	rMedia                   // a story from elsewhere ("on the news"): its clause is no report
	rDisclaim                // "nothing to do with me": what others have does not count
	rNormalCheck             // asks afterwards whether what was told is normal ("..., normal?")
	rPastOther               // a weak past marker ("once"): past for someone else's story only
	rFig                     // a figurative cue ("laughing", "the price of"): its clause's figurative signs are no report
	nRoles
)

// rolePrio breaks ties between equally long overlapping phrases: lower wins.
var rolePrio = [nRoles]int8{
	rPseudo: 0, rSign: 1, rMod: 2, rTime: 3, rScore: 4, rChild: 5, rOther: 5,
	rPronoun: 6, rFirst: 7, rTerm: 8, rNeg: 9, rNegPost: 10, rHypo: 11, rCond: 12, rQuestion: 13, rAffirm: 1,
	rAcq: 5, rNotPatient: 5, rHearsay: 8, rMedia: 8, rDisclaim: 8, rNormalCheck: 13, rFig: 8, rPastOther: 2,
}

var ctxRoles = []struct {
	name string
	role role
	arg  int32
}{
	{"negation", rNeg, 0}, {"negation_list", rNeg, negList}, {"figurative", rFig, figIdiom}, {"figurative_excitement", rFig, figExcite}, {"past_others", rPastOther, 0}, {"negation_post", rNegPost, 0}, {"pseudo", rPseudo, 0},
	{"hypothetical", rHypo, 0}, {"conditional", rCond, 0}, {"question", rQuestion, 0}, {"affirm", rAffirm, 0},
	{"acquaintance", rAcq, 0}, {"not_patient", rNotPatient, 0}, {"hearsay", rHearsay, 0}, {"media", rMedia, 0}, {"disclaim", rDisclaim, 0},
	{"normal_check", rNormalCheck, 0},
	{"terminators", rTerm, 0}, {"child", rChild, 0}, {"other", rOther, 0},
	{"pronouns", rPronoun, 0}, {"first_person", rFirst, 0},
}

// Args of a figurative cue: an idiom ("laughed so hard", "the price of")
// sets aside every figurative sign, excitement ("watching the final") only
// those marked excitement.
const (
	figIdiom  = 1
	figExcite = 2
)

// modAhead marks the arg of a modifier that may also read the complaint
// right after it: Spanish puts the verb first ("se me pasó el mareo").
const modAhead = 1 << 8

// negList is the arg of a negation that reads a whole list of signs
// ("denies fever, chest pain, palpitations"), as clinical notes do.
const negList = 1

// Single-word context lists that set token flags instead of making phrases.
var ctxFlags = []struct {
	name string
	flag uint16
}{
	{"clause_starts", fClauseStart}, {"backref_fillers", fFiller},
	{"list_words", fListWord}, {"list_end", fListEnd}, {"gap_breakers", fBreaker},
	{"personal", fPersonal}, {"negation_contrast", fContrast}, {"simile", fSimile},
	{"perfect_aux", fAux}, {"participles", fPart}, {"recent", fRecent},
}

// elem is one position of a compiled pattern.
type elem struct {
	ids   []int32 // lexeme ids accepted here (any of)
	num   bool    // accepts a number or number word ("#")
	year  bool    // accepts only a year written in digits ("####": 1900 to 2100)
	slash bool    // accepts "/"
	gap   int8    // tokens that may be skipped before this element ("..." or "~")
	list  bool    // the gap may cross commas ("~": "red, hot and swollen")
}

// pattern is one compiled term.
type pattern struct {
	elems  []elem
	role   role
	arg    int32
	hours  float64
	offset float64
}

// entry is a compiled sign rule: the levels a mention takes in each context.
type entry struct {
	id, sign, lang string
	adult, child   [nCat]engine.Level
	later          bool
	laterHours     float64
	laterLevel     engine.Level
	ask            *engine.Clarify
	askNow         *askNowSpec
	figurative     bool
	excitement     bool
	plan           bool
	history        bool
}

type combo struct {
	signs []string
	level engine.Level
}

type band struct {
	min, max float64
	entry    int32
}

// score is a compiled scoreSpec; ctx and not are indexed by lexeme id.
type score struct {
	ctx, not []bool
	needCtx  bool
	bareMax  int
	bands    []band
}

// lexicon maps normalised words to lexeme ids. A lexeme is one alternative
// of a pattern element: an exact word, or a stem written "word*".
type lexicon struct {
	exact     map[string]int32
	stems     map[string]int32
	stemLens  []int
	n         int32
	numbers   map[string]float64
	flags     map[string]uint16
	notTypos  map[string]bool
	parts     map[string]bool   // fuzzy.parts: what a real word beside a pain word may stand for
	joinable  map[string]bool   // fuzzy.words: the sign words two words heard apart may make
	joinHead  [1 << 12]bool     // stemKey of the first two letters of a joinable word
	collapsed map[string]string // word with double letters collapsed -> word
	typos     typoIndex
	vocab     []bool          // lexeme id -> a word of a sign's own vocabulary (for Unread)
	everyday  map[string]bool // words never counted as unread, even as a typo of a sign word
	// stemMask says, per first two bytes of a word (folded by stemKey),
	// which stem lengths have a stem starting with them (bit k for length
	// k), so a word is looked up only at the stem lengths that can match.
	stemMask [1 << 12]uint32
	// info holds what lexemes() needs about a word beyond its ids, in one
	// lookup: its flags, its value as a number word, whether it is
	// everyday.
	info map[string]wordInfo
	// partEnds are the endings of regular participles ("ado", "ido"),
	// from context.participle_endings.
	partEnds []string
}

// wordInfo is the per-word data of lexicon.info.
type wordInfo struct {
	flags    uint16
	isNum    bool
	everyday bool
	pain     bool // a word of fuzzy.part_pains
	num      float64
}

// stemKey folds the first two bytes of a word into an index of stemMask.
func stemKey(a, b byte) int { return int(a&63)<<6 | int(b&63) }

// mayStem reports whether w could begin with a stem of length k.
func (lx *lexicon) mayStem(w []byte, k int) bool {
	return k < 2 || k > 31 || lx.stemMask[stemKey(w[0], w[1])]&(1<<k) != 0
}

// ruleset is everything compiled from the rule files; it is read-only once built.
type ruleset struct {
	lex      lexicon
	patterns []pattern
	byFirst  [][]int32 // lexeme id -> patterns whose first element accepts it (except those in byPair)
	// byPair holds, per lexeme id of the first element, the patterns whose
	// second element follows with no gap and accepts words, sorted by the
	// second element's lexeme id: a pattern is only tried where the next
	// token can continue it, so the common first words ("my", "no", "i")
	// cost a lookup instead of a try of every phrase they begin.
	byPair   [][]pairRef
	numFirst []int32 // patterns starting with "#"
	entries  []entry
	combos   []combo
	scores   []score
	negWin   int
	condWin  int
	langs    []string
}

// normWords normalises a piece of a term the same way messages are
// normalised and returns its word tokens.
func normWords(s string) ([]string, []tokKind) {
	sc := &scratch{}
	sc.tokenize(s, 64)
	var out []string
	var kinds []tokKind
	for _, t := range sc.toks {
		if t.kind == tComma || t.kind == tStop {
			kinds = append(kinds, t.kind)
			out = append(out, "")
			continue
		}
		kinds = append(kinds, t.kind)
		out = append(out, string(sc.norm[t.s:t.e]))
	}
	return out, kinds
}

type altSpec struct {
	word   string
	stem   bool
	num    bool
	year   bool
	slash  bool
	kindOK bool
}

type elemSpec struct {
	alts []altSpec
	gap  int8
	list bool
}

const maxElems = 8
const gapSize = 3

// wideGap is the gap of "....": a body part and what it does may sit further
// apart ("pain in the middle of my chest").
const wideGap = 6

// parseTerm turns a term such as "heart ... racing|pounding", "dizz*" or
// "# / 10" into element specs.
func parseTerm(term string) ([]elemSpec, error) {
	fields := strings.Fields(term)
	if len(fields) == 0 {
		return nil, fmt.Errorf("empty term")
	}
	var out []elemSpec
	var gap int8
	list := false
	for _, f := range fields {
		if f == "..." || f == "~" || f == "...." {
			if len(out) == 0 {
				return nil, fmt.Errorf("%q: a term cannot start with %s", term, f)
			}
			if gap > 0 {
				return nil, fmt.Errorf("%q: two gaps in a row", term)
			}
			gap, list = gapSize, f == "~"
			if f == "...." {
				gap = wideGap
			}
			continue
		}
		if strings.Contains(f, "|") {
			var es elemSpec
			es.gap, es.list = gap, list
			for _, a := range strings.Split(f, "|") {
				as, err := parseAlt(a, term)
				if err != nil {
					return nil, err
				}
				es.alts = append(es.alts, as)
			}
			out = append(out, es)
			gap, list = 0, false
			continue
		}
		if f == "#" || f == "/" || f == "####" {
			as, _ := parseAlt(f, term)
			out = append(out, elemSpec{alts: []altSpec{as}, gap: gap, list: list})
			gap, list = 0, false
			continue
		}
		stem := strings.HasSuffix(f, "*")
		words, kinds := normWords(strings.TrimSuffix(f, "*"))
		if len(words) == 0 {
			return nil, fmt.Errorf("%q: %q has no letters, digits or emoji", term, f)
		}
		for i, w := range words {
			switch kinds[i] {
			case tComma, tStop:
				return nil, fmt.Errorf("%q: punctuation is not allowed in terms (use ... to allow a gap)", term)
			case tSlash:
				out = append(out, elemSpec{alts: []altSpec{{slash: true}}, gap: gap, list: list})
			default:
				out = append(out, elemSpec{alts: []altSpec{{word: w, stem: stem && i == len(words)-1}}, gap: gap, list: list})
			}
			gap, list = 0, false
		}
	}
	if gap > 0 {
		return nil, fmt.Errorf("%q: a term cannot end with a gap", term)
	}
	if len(out) > maxElems {
		return nil, fmt.Errorf("%q: too long (at most %d words)", term, maxElems)
	}
	if out[0].alts[0].slash {
		return nil, fmt.Errorf("%q: a term cannot start with /", term)
	}
	return out, nil
}

func parseAlt(a, term string) (altSpec, error) {
	switch a {
	case "#":
		return altSpec{num: true}, nil
	case "####":
		return altSpec{num: true, year: true}, nil
	case "/":
		return altSpec{slash: true}, nil
	case "":
		return altSpec{}, fmt.Errorf("%q: empty alternative", term)
	}
	stem := strings.HasSuffix(a, "*")
	words, kinds := normWords(strings.TrimSuffix(a, "*"))
	if len(words) != 1 || kinds[0] == tComma || kinds[0] == tStop || kinds[0] == tSlash {
		return altSpec{}, fmt.Errorf("%q: alternative %q must be a single word", term, a)
	}
	if stem && len(words[0]) < 3 {
		return altSpec{}, fmt.Errorf("%q: stem %q is too short (at least 3 letters)", term, a)
	}
	return altSpec{word: words[0], stem: stem}, nil
}

func (lx *lexicon) id(a altSpec) int32 {
	m := lx.exact
	if a.stem {
		m = lx.stems
	}
	if id, ok := m[a.word]; ok {
		return id
	}
	id := lx.n
	lx.n++
	m[a.word] = id
	return id
}

// compile builds the rule set from merged rules, reporting problems to el.
func compile(m *mergedRules, el *errList) *ruleset {
	rs := &ruleset{negWin: 8, condWin: 6, langs: m.langs}
	if m.negWin > 0 {
		rs.negWin = m.negWin
	}
	if m.condWin > 0 {
		rs.condWin = m.condWin
	}
	lx := &rs.lex
	lx.exact = map[string]int32{}
	lx.stems = map[string]int32{}
	lx.numbers = m.numbers
	lx.flags = map[string]uint16{}
	lx.notTypos = map[string]bool{}
	lx.collapsed = map[string]string{}
	for k := range m.numbers {
		if w, _ := normWords(k); len(w) != 1 {
			el.add("rules", "numbers."+k, "want a single word")
		}
	}
	seen := map[string]bool{}
	add := func(tr termRef, r role, arg int32, hours, offset float64) {
		specs, err := parseTerm(tr.term)
		if err != nil {
			el.add(tr.at.file, tr.at.key, "%v", err)
			return
		}
		key := fmt.Sprintf("%d/%d/%g/%g/%s", r, arg, hours, offset, tr.term)
		if seen[key] {
			return
		}
		seen[key] = true
		p := pattern{role: r, arg: arg, hours: hours, offset: offset}
		for _, es := range specs {
			e := elem{gap: es.gap, list: es.list}
			for _, a := range es.alts {
				switch {
				case a.num:
					e.num = true
					e.year = e.year || a.year
				case a.slash:
					e.slash = true
				default:
					e.ids = append(e.ids, lx.id(a))
				}
			}
			p.elems = append(p.elems, e)
		}
		rs.patterns = append(rs.patterns, p)
	}

	// Questions and entries.
	asks := map[string]*engine.Clarify{}
	for k, q := range m.questions {
		c := &engine.Clarify{Text: q.spec.Text}
		for _, ch := range q.spec.Choices {
			l, _ := engine.ParseLevel(ch.Level)
			c.Choices = append(c.Choices, engine.ClarifyChoice{ID: ch.ID, Label: ch.Label, Level: l})
		}
		asks[k] = c
	}
	signNames := map[string]bool{}
	entryIdx := map[string]int32{}
	for _, ms := range m.signs {
		if ms == nil {
			continue
		}
		s := ms.spec
		e := entry{id: s.ID, sign: s.Sign, lang: ms.lang, askNow: m.askNow[ms.lang], figurative: s.Figurative, excitement: s.Excitement, plan: s.Plan, history: s.History}
		base, _ := engine.ParseLevel(s.Level)
		for c := range e.adult {
			switch c {
			case catImproving, catResolved, catHistorical, catPast:
				e.adult[c] = engine.None
			default:
				e.adult[c] = base
			}
		}
		for k, v := range s.Levels {
			l, _ := engine.ParseLevel(v)
			e.adult[catIndex(k, false)] = l
		}
		e.child = e.adult
		for k, v := range s.Child {
			l, _ := engine.ParseLevel(v)
			e.child[catIndex(k, true)] = l
		}
		if s.Later != nil {
			e.later = true
			e.laterHours = s.Later.Hours
			e.laterLevel, _ = engine.ParseLevel(s.Later.Level)
		}
		if s.Ask != "" {
			q, ok := asks[ms.lang+":"+s.Ask]
			if !ok {
				el.add(ms.at.file, ms.at.key+".ask", "unknown question %q (define it under questions in a %q file)", s.Ask, ms.lang)
			}
			e.ask = q
		}
		idx := int32(len(rs.entries))
		rs.entries = append(rs.entries, e)
		entryIdx[ms.lang+":"+s.ID] = idx
		signNames[s.Sign] = true
		for j, t := range s.Terms {
			add(termRef{t, origin{ms.at.file, fmt.Sprintf("%s.terms[%d]", ms.at.key, j)}}, rSign, idx, 0, 0)
		}
	}
	for c := 1; c < nCat; c++ {
		for _, tr := range m.mods[c] {
			add(tr, rMod, int32(c), 0, 0)
		}
	}
	for _, tr := range m.ctx["resolved_ahead"] {
		add(tr, rMod, catResolved|modAhead, 0, 0)
	}
	for _, cr := range ctxRoles {
		for _, tr := range m.ctx[cr.name] {
			add(tr, cr.role, cr.arg, 0, 0)
		}
	}
	for _, tr := range m.ctx["participle_endings"] {
		w, _ := normWords(tr.term)
		if len(w) != 1 || len(w[0]) < 2 {
			el.add(tr.at.file, tr.at.key, "%q: want one ending of at least two letters", tr.term)
			continue
		}
		lx.partEnds = append(lx.partEnds, w[0])
	}
	for _, cf := range ctxFlags {
		for _, tr := range m.ctx[cf.name] {
			w, _ := normWords(tr.term)
			if len(w) != 1 {
				el.add(tr.at.file, tr.at.key, "%q: want a single word", tr.term)
				continue
			}
			lx.flags[w[0]] |= cf.flag
		}
	}
	for i, c := range m.combos {
		for j, s := range c.Signs {
			if !signNames[s] {
				el.add(m.comboAt[i].file, fmt.Sprintf("%s.signs[%d]", m.comboAt[i].key, j), "unknown sign %q", s)
			}
		}
		l, _ := engine.ParseLevel(c.Level)
		rs.combos = append(rs.combos, combo{signs: c.Signs, level: l})
	}
	for si, name := range m.scoreList {
		ms := m.scores[name]
		sco := score{bareMax: ms.bareWords}
		for _, tr := range ms.patterns {
			add(tr, rScore, int32(si), 0, 0)
		}
		for i, b := range ms.bands {
			idx, ok := entryIdx[ms.bandLang+":"+b.Use]
			if !ok {
				el.add(ms.bandAt.file, fmt.Sprintf("%s[%d].use", ms.bandAt.key, i), "unknown sign id %q", b.Use)
				continue
			}
			sco.bands = append(sco.bands, band{min: b.Min, max: b.Max, entry: idx})
		}
		sort.SliceStable(sco.bands, func(i, j int) bool { return sco.bands[i].min > sco.bands[j].min })
		rs.scores = append(rs.scores, sco)
	}
	for i, t := range m.time {
		add(termRef{t.Term, m.timeAt[i]}, rTime, 0, t.Hours, t.Offset)
	}
	for k := range lx.stems {
		if !containsInt(lx.stemLens, len(k)) {
			lx.stemLens = append(lx.stemLens, len(k))
		}
	}
	sort.Ints(lx.stemLens)

	// Score context words become lexemes so tokens can be checked.
	ids := func(list []termRef) []int32 {
		var out []int32
		for _, tr := range list {
			a, err := parseAlt(tr.term, tr.term)
			if err != nil || a.num || a.slash {
				el.add(tr.at.file, tr.at.key, "%q: want a single word or stem", tr.term)
				continue
			}
			out = append(out, lx.id(a))
		}
		return out
	}
	ctxIDs := make([][2][]int32, len(m.scoreList))
	for si, name := range m.scoreList {
		ctxIDs[si] = [2][]int32{ids(m.scores[name].ctx), ids(m.scores[name].not)}
	}
	for si := range rs.scores {
		sco := &rs.scores[si]
		sco.ctx, sco.not = make([]bool, lx.n), make([]bool, lx.n)
		for _, id := range ctxIDs[si][0] {
			sco.ctx[id] = true
		}
		for _, id := range ctxIDs[si][1] {
			sco.not[id] = true
		}
		sco.needCtx = len(ctxIDs[si][0]) > 0
	}
	// Stems may have been added by score context words.
	lx.stemLens = lx.stemLens[:0]
	for k := range lx.stems {
		if !containsInt(lx.stemLens, len(k)) {
			lx.stemLens = append(lx.stemLens, len(k))
		}
		if len(k) >= 2 && len(k) <= 31 {
			lx.stemMask[stemKey(k[0], k[1])] |= 1 << len(k)
		}
	}
	sort.Ints(lx.stemLens)

	// Typo tolerance.
	for _, tr := range m.notTypos {
		w, _ := normWords(tr.term)
		if len(w) != 1 {
			el.add(tr.at.file, tr.at.key, "%q: want a single word", tr.term)
			continue
		}
		lx.notTypos[w[0]] = true
	}
	lx.parts = map[string]bool{}
	for _, tr := range m.parts {
		w, _ := normWords(tr.term)
		if len(w) != 1 || len(w[0]) < 5 {
			el.add(tr.at.file, tr.at.key, "%q: want a single word of at least 5 letters", tr.term)
			continue
		}
		lx.parts[w[0]] = true
	}
	for _, tr := range m.fuzzy {
		w, _ := normWords(tr.term)
		if len(w) != 1 || len(w[0]) < 5 {
			el.add(tr.at.file, tr.at.key, "%q: want a single word of at least 5 letters", tr.term)
			continue
		}
		if ids := lx.resolve(nil, w[0]); len(ids) > 0 {
			lx.typos.add(w[0], ids)
			if lx.joinable == nil {
				lx.joinable = map[string]bool{}
			}
			lx.joinable[w[0]] = true
			lx.joinHead[stemKey(w[0][0], w[0][1])] = true
		}
		// else: not used by any term (perhaps a clinic removed it): nothing to correct to
	}
	rs.signVocab(m)
	for w := range lx.exact {
		if len(w) >= 4 {
			c := collapseDoubles(w)
			if _, ok := lx.collapsed[c]; !ok || w < lx.collapsed[c] {
				lx.collapsed[c] = w
			}
		}
	}

	// One lookup per word for its flags, number value and everyday mark.
	lx.info = map[string]wordInfo{}
	for w, f := range lx.flags {
		wi := lx.info[w]
		wi.flags |= f
		lx.info[w] = wi
	}
	for w, v := range lx.numbers {
		wi := lx.info[w]
		wi.isNum, wi.num = true, v
		lx.info[w] = wi
	}
	for w := range lx.everyday {
		wi := lx.info[w]
		wi.everyday = true
		lx.info[w] = wi
	}
	for _, tr := range m.partPains {
		w, _ := normWords(tr.term)
		if len(w) != 1 {
			el.add(tr.at.file, tr.at.key, "%q: want a single word", tr.term)
			continue
		}
		wi := lx.info[w[0]]
		wi.pain = true
		lx.info[w[0]] = wi
	}

	// Index patterns by their first element (and their second, where it
	// follows with no gap and accepts words only).
	rs.byFirst = make([][]int32, lx.n)
	rs.byPair = make([][]pairRef, lx.n)
	for i, p := range rs.patterns {
		e := p.elems[0]
		if e.num {
			rs.numFirst = append(rs.numFirst, int32(i))
		}
		paired := len(p.elems) > 1 && p.elems[1].gap == 0 && !p.elems[1].num && !p.elems[1].slash && len(p.elems[1].ids) > 0
		for _, id := range e.ids {
			if !paired {
				rs.byFirst[id] = append(rs.byFirst[id], int32(i))
				continue
			}
			for _, id2 := range p.elems[1].ids {
				rs.byPair[id] = append(rs.byPair[id], pairRef{second: id2, p: int32(i)})
			}
		}
	}
	for id := range rs.byPair {
		slices.SortFunc(rs.byPair[id], func(a, b pairRef) int {
			if a.second != b.second {
				return int(a.second - b.second)
			}
			return int(a.p - b.p)
		})
	}
	return rs
}

// pairRef is a pattern reached through its first two elements.
type pairRef struct {
	second int32 // a lexeme id the second element accepts
	p      int32 // the pattern
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func collapseDoubles(w string) string {
	b := make([]byte, 0, len(w))
	for i := 0; i < len(w); i++ {
		if i > 0 && w[i] == w[i-1] {
			continue
		}
		b = append(b, w[i])
	}
	return string(b)
}

// resolve appends the lexeme ids of an exact word (exact match and stems).
func (lx *lexicon) resolve(dst []int32, w string) []int32 {
	if id, ok := lx.exact[w]; ok {
		dst = append(dst, id)
	}
	for _, k := range lx.stemLens {
		if k > len(w) {
			break
		}
		if k >= 2 && k <= 31 && lx.stemMask[stemKey(w[0], w[1])]&(1<<k) == 0 {
			continue
		}
		if id, ok := lx.stems[w[:k]]; ok {
			dst = append(dst, id)
		}
	}
	return dst
}

// resolveBytes is resolve for a token, falling back to a stretched-word
// reading ("dizzzyyy") and to typos of sign words (see fuzzy.go).
func (lx *lexicon) resolveToken(dst []int32, w []byte, stretched bool, buf *[]byte) []int32 {
	n0 := len(dst)
	if id, ok := lx.exact[string(w)]; ok {
		dst = append(dst, id)
	}
	for _, k := range lx.stemLens {
		if k > len(w) {
			break
		}
		if !lx.mayStem(w, k) {
			continue
		}
		if id, ok := lx.stems[string(w[:k])]; ok {
			dst = append(dst, id)
		}
	}
	if len(dst) > n0 {
		return dst
	}
	if stretched {
		b := (*buf)[:0]
		for i := 0; i < len(w); i++ {
			if i > 0 && w[i] == w[i-1] {
				continue
			}
			b = append(b, w[i])
		}
		*buf = b
		if word, ok := lx.collapsed[string(b)]; ok {
			return lx.resolve(dst, word)
		}
	}
	if base, ok := superlativeBase(w, buf); ok {
		// Spanish superlatives: "cansadísima" reads as "cansada". base
		// lives in buf, so it is resolved with a scratch of its own.
		var tmp []byte
		if out := lx.resolveToken(dst, base, false, &tmp); len(out) > len(dst) {
			return out
		}
	}
	if len(w) < 4 || lx.notTypos[string(w)] {
		return dst
	}
	if t := lx.typos.lookup(w, buf); t >= 0 {
		return append(dst, lx.typos.ids[t]...)
	}
	return dst
}

// joinedSign reads two neighbouring words as one sign word heard in two
// parts ("seize your" or "seize her" for seizure, "new monia" for
// pneumonia, "a tack" in "heart a tack"). It is tried only when one of the
// two is no rule word (firstUnread for w, a lookup for next), and the pair
// joined must be one of the key sign words of fuzzy.words (seven letters
// or more), at most one letter off it (see fuzzy.go) or, failing that, sound like one: the same consonants in order
// (vowels, h, w and y dropped, letters that sound alike folded) with the
// first word opening like the sign word, so "size your" stays apart from
// seizure. join and buf are scratch space; nothing is allocated.
func (lx *lexicon) joinedSign(dst []int32, w, next []byte, firstUnread bool, join, buf *[]byte) ([]int32, bool) {
	if len(w) < 1 || len(next) < 2 || len(w)+len(next) > maxWordBytes || lx.typos.skel == nil {
		return dst, false
	}
	if len(w) >= 2 {
		if !lx.joinHead[stemKey(w[0], w[1])] {
			return dst, false
		}
	} else if !lx.joinHead[stemKey(w[0], next[0])] {
		return dst, false
	}
	if !firstUnread && !lx.unknown(next) {
		return dst, false
	}
	j := append(append((*join)[:0], w...), next...)
	*join = j
	if lx.notTypos[string(j)] {
		return dst, false
	}
	if lx.joinable[string(j)] {
		return lx.resolveToken(dst, j, false, buf), true
	}
	t := int32(-1)
	if len(j) >= 5 {
		// One letter off at most: two words joined are long, and two
		// letters off a long sign word would join "bro the" into
		// "breathe".
		if t = lx.typos.lookup(j, buf); t >= 0 && osaDistance(j, lx.typos.targets[t], 1) > 1 {
			t = -1
		}
	}
	if t < 0 && len(w) >= 3 {
		k := skeleton((*buf)[:0], j)
		*buf = k
		if len(k) >= 3 {
			if st, ok := lx.typos.skel[string(k)]; ok && string(lx.typos.targets[st][:3]) == string(w[:3]) {
				t = st
			}
		}
	}
	if t < 0 || len(lx.typos.targets[t]) < 7 || !lx.joinable[lx.typos.targets[t]] {
		return dst, false
	}
	return append(dst, lx.typos.ids[t]...), true
}

// unknown reports whether w is no rule word, not even by a stem.
func (lx *lexicon) unknown(w []byte) bool {
	if _, ok := lx.exact[string(w)]; ok {
		return false
	}
	for _, k := range lx.stemLens {
		if k > len(w) {
			break
		}
		if _, ok := lx.stems[string(w[:k])]; ok && lx.mayStem(w, k) {
			return false
		}
	}
	return true
}

// nearPart appends the ids of the body part (fuzzy.parts) that w, a real
// word listed under not_typos, is one typo away from; it appends nothing
// when w is near no part. The caller checks that a pain word is beside it.
func (lx *lexicon) nearPart(dst []int32, w []byte, buf *[]byte) []int32 {
	if len(w) < 4 || len(lx.parts) == 0 {
		return dst
	}
	if t := lx.typos.lookup(w, buf); t >= 0 && lx.parts[lx.typos.targets[t]] {
		return append(dst, lx.typos.ids[t]...)
	}
	return dst
}

// superlativeBase turns a Spanish absolute superlative into its base
// ("cansadisima" -> "cansada", "muchisimo" -> "mucho"), accents already
// folded; ok is false for any other word.
func superlativeBase(w []byte, buf *[]byte) ([]byte, bool) {
	n := len(w)
	if n < 8 {
		return nil, false
	}
	end := w[n-1]
	stem := n - 5
	if end == 's' {
		end, stem = w[n-2], n-6
	}
	if (end != 'a' && end != 'o') || string(w[stem:stem+4]) != "isim" {
		return nil, false
	}
	b := append((*buf)[:0], w[:stem]...)
	b = append(b, end)
	*buf = b
	return b, true
}
