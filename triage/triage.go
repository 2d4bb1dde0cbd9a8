package triage

import (
	"cmp"
	"slices"
	"sync"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/triage/learned"
)

// Classifier reads patient messages with compiled rules. It is immutable
// after Load, so one Classifier may be shared by every goroutine; Triage
// keeps its working memory in a pool and allocates little per message.
type Classifier struct {
	rs   *ruleset
	pool sync.Pool
	// model is the learned second opinion; it may mark a message Suspect
	// but never lowers what the rules found.
	model *learned.Model
	// signs interns the lists of sign names handed out in Findings, so the
	// common path allocates nothing (see internSigns).
	signs signCache
}

// signCache maps a list of sign names, keyed by their indices, to one
// shared read-only slice. It holds at most maxSignLists lists; past that a
// list is copied per call.
type signCache struct {
	idx map[string]byte // sign name -> index, fixed after load
	mu  sync.RWMutex
	m   map[string][]string
}

const maxSignLists = 4096

// internSigns returns a shared copy of names. The copy's capacity is its
// length, so a caller's append copies instead of writing into it; callers
// must not modify its elements.
func (c *Classifier) internSigns(names []string, buf []byte) ([]string, []byte) {
	buf = buf[:0]
	for _, n := range names {
		i, ok := c.signs.idx[n]
		if !ok {
			return slices.Clone(names), buf
		}
		buf = append(buf, i)
	}
	c.signs.mu.RLock()
	got, ok := c.signs.m[string(buf)]
	c.signs.mu.RUnlock()
	if ok {
		return got, buf
	}
	cp := slices.Clip(slices.Clone(names))
	c.signs.mu.Lock()
	if len(c.signs.m) < maxSignLists {
		c.signs.m[string(buf)] = cp
	}
	c.signs.mu.Unlock()
	return cp, buf
}

var _ engine.Triager = (*Classifier)(nil)

// unreadBar is the share of the model's threshold a message with an unread
// sign word must reach to be Suspect.
var unreadBar float32 = 0.3

// quietBar is the share of the model's threshold below which a message with
// no sign vocabulary at all is Quiet. On the development corpus (every
// labelled file but the sealed ones still unseen) no red-flag or watch
// message was Quiet, and the lowest-scoring watch message the rules could
// not place scored 0.68 of the threshold.
var quietBar float32 = 0.5

// Limits on the work done for one message. A message longer than maxInput
// bytes is read as its first headInput bytes plus its last tailInput bytes,
// so an attack of megabytes costs the same as a long letter while a red flag
// written at the very end of a long message is still seen.
const (
	maxInput   = 32 << 10
	headInput  = 28 << 10
	tailInput  = 4 << 10
	maxTokens  = 12000
	tailTokens = 2000
)

var (
	defaultOnce sync.Once
	defaultC    *Classifier
)

// Default returns the classifier for the embedded English and Spanish rules.
// It is built once and shared. It panics only if the embedded rule files are
// broken, which the package tests rule out before any release.
func Default() *Classifier {
	defaultOnce.Do(func() {
		c, err := Load()
		if err != nil {
			panic("triage: embedded rules are invalid: " + err.Error())
		}
		defaultC = c
	})
	return defaultC
}

// Load builds a classifier from the embedded default rules followed by files,
// in order, so a clinic's file extends the defaults: its signs replace
// default signs with the same language and id (or remove them with
// "disabled": true), and its lists of terms are added to the defaults. A file
// with "replace": true drops everything loaded before it, for a clinic that
// wants only its own rules. Errors name the file and the key at fault.
func Load(files ...File) (*Classifier, error) {
	all := append(defaultFiles(), files...)
	rs, err := build(all)
	if err != nil {
		return nil, err
	}
	return newClassifier(rs), nil
}

// LoadFiles is Load for rule files on disk, named by path.
func LoadFiles(paths ...string) (*Classifier, error) {
	files, err := readFiles(paths)
	if err != nil {
		return nil, err
	}
	return Load(files...)
}

func newClassifier(rs *ruleset) *Classifier {
	c := &Classifier{rs: rs, model: learned.Default()}
	c.signs.idx = map[string]byte{}
	c.signs.m = map[string][]string{}
	for _, e := range rs.entries {
		if _, ok := c.signs.idx[e.sign]; !ok && len(c.signs.idx) < 255 {
			c.signs.idx[e.sign] = byte(len(c.signs.idx))
		}
	}
	c.pool.New = func() any { return &scratch{tried: make([]int32, len(rs.patterns))} }
	return c
}

// scratch is the per-call working memory, reused through the pool.
type scratch struct {
	// stray counts words saying a complaint goes on or grows ("still",
	// "no se quita") in a message whose every mention is settled: the
	// complaint they speak of was not read, so it counts as unread.
	stray     int
	norm      []byte
	toks      []token
	lex       []int32
	cands     []cand
	pos       []int32
	spans     []span
	spanStart []int32
	ments     []mention
	mods      []modRef
	tried     []int32
	buf       []byte
	signs     []string
	key       []byte // internSigns' key buffer
	join      []byte // two words heard as one sign word (see joinedSign)
	lastScore []int
	words     int // word, number and emoji tokens in the message
}

type cand struct {
	p            int32
	start, end   int32
	posOff, posN int32
	nEl          int16
	prio         int8
	// key orders candidates as claim wants them, in one comparison: more
	// elements first, then lower role priority, then the shorter span,
	// then the earlier start.
	key uint64
}

// candKey packs claim's order of a candidate into one number.
func candKey(nEl int16, prio int8, start, end int32) uint64 {
	return uint64(uint16(0x7fff-nEl))<<48 | uint64(uint8(prio))<<40 | uint64(uint32(end-start)&0xffff)<<24 | uint64(uint32(start)&0xffffff)
}

type span struct {
	p            int32
	role         role
	arg          int32
	start, end   int32 // end is one past the last literal token
	first, lastL int32
	posOff, posN int32
	clause, sent int32
	neg, hypo    bool
	question     bool
	fig          uint8 // figurative cues reaching it: figIdiom, figExcite
	subj         uint8
}

const (
	subjSelf uint8 = iota
	subjChild
	subjOther
	subjAcq  // an acquaintance: counts unless what is said is hearsay or past
	subjNone // not a patient at all ("my dog"): never counts
)

var subjNames = [...]string{"", "child", "other", "other", "other"}

type mention struct {
	span       int32
	e          int32
	start      int32
	end        int32
	clause     int32
	mods       uint16
	level      engine.Level
	orig       engine.Level
	amb        bool
	askable    bool
	ask        *engine.Clarify
	askNow     bool
	live       bool
	resolved   bool
	improving  bool // read as getting better ("headache is fading")
	pleasant   bool // a sensation called pleasant that the rules set at no level ("tingly in a nice way")
	historical bool
}

type modRef struct {
	span  int32
	cat   int
	start int32
	end   int32
	ahead bool // may read the complaint right after it (context.resolved_ahead)
}

func (sc *scratch) reset() {
	sc.norm = sc.norm[:0]
	sc.toks = sc.toks[:0]
	sc.lex = sc.lex[:0]
	sc.cands = sc.cands[:0]
	sc.pos = sc.pos[:0]
	sc.spans = sc.spans[:0]
	sc.ments = sc.ments[:0]
	sc.mods = sc.mods[:0]
	sc.signs = sc.signs[:0]
	sc.stray = 0
}

// Triage classifies one message. It never panics and always returns a level:
// if the rules ever hit an internal error the message is reported as urgent
// with the sign "triage_error", so a person looks at it.
func (c *Classifier) Triage(text string, hoursSinceSession float64) (f engine.Finding) {
	defer func() {
		if r := recover(); r != nil {
			f = engine.Finding{Level: engine.Urgent, Signs: []string{"triage_error"}}
		}
	}()
	sc := c.pool.Get().(*scratch)
	sc.reset()
	f = c.rs.run(sc, text, hoursSinceSession)
	if len(f.Signs) > 0 {
		f.Signs, sc.key = c.internSigns(f.Signs, sc.key)
	}
	unreadLive := f.Suspect
	f.Suspect = false
	if f.Level < engine.Urgent || f.Ask != nil {
		// The second opinion only ever raises: it asks the safety-net
		// question about what the rules left at watch or below. A word of
		// a sign's vocabulary that no rule read lowers the bar it must
		// reach, so a misspelt sign with little else around it is asked
		// about while an everyday word near a sign word is not.
		p := c.model.Score(text)
		f.Suspect = p >= c.model.Threshold || (unreadLive && p >= unreadBar*c.model.Threshold)
		f.Quiet = !f.Suspect && p < quietBar*c.model.Threshold && f.Level == engine.None && f.Ask == nil &&
			len(f.Signs) == 0 && f.Settled == 0 && f.Unread == 0
	}
	if cap(sc.toks) > 1<<14 || cap(sc.norm) > 1<<16 {
		return f // don't keep huge buffers around
	}
	c.pool.Put(sc)
	return f
}

func (rs *ruleset) run(sc *scratch, text string, hours float64) engine.Finding {
	if len(text) > maxInput {
		sc.tokenize(text[:headInput], maxTokens-tailTokens)
		sc.punct(tStop)
		sc.tokenize(text[len(text)-tailInput:], maxTokens)
	} else {
		sc.tokenize(text, maxTokens)
	}
	if len(sc.toks) == 0 {
		return engine.Finding{Level: engine.None}
	}
	sc.words = 0
	for i := range sc.toks {
		if k := sc.toks[i].kind; k == tWord || k == tNum || k == tEmoji {
			sc.words++
		}
	}
	rs.lexemes(sc)
	rs.candidates(sc)
	rs.claim(sc)
	rs.clauses(sc)
	rs.scopes(sc)
	rs.answers(sc)
	f := rs.decide(sc, hours)
	rs.unread(sc, &f)
	return f
}

// unread counts the words of a sign's vocabulary (or typos of them) that no
// matched phrase reads and no negation reaches: "my chest ... something"
// where no chest rule matched. Such a word outside a hypothetical makes the
// finding Suspect, so the engine asks rather than reassures.
func (rs *ruleset) unread(sc *scratch, f *engine.Finding) {
	n := 0
	live := false
	si := 0
	for t := range sc.toks {
		tk := &sc.toks[t]
		if !tk.vocab || tk.claim != 0 || tk.timeClaim {
			continue
		}
		// A word inside the gap of a matched phrase is read with it.
		for si < len(sc.spans) && sc.spans[si].end <= int32(t) {
			si++
		}
		inside := false
		for j := si; j < len(sc.spans) && sc.spans[j].start <= int32(t); j++ {
			if s := &sc.spans[j]; s.role != rTime && s.start <= int32(t) && int32(t) < s.end {
				inside = true
				break
			}
		}
		if inside {
			continue
		}
		if tk.negated {
			// Inside a negation the word is read with it ("nothing
			// weird", "no weird heartbeats"): whatever it would have
			// said is denied, so it is settled.
			continue
		}
		n++
		if !tk.scoped {
			live = true
		}
	}
	f.Unread = n + sc.stray
	f.Suspect = f.Suspect || live
}

// lexemes resolves each token's lexeme ids and flags.
func (rs *ruleset) lexemes(sc *scratch) {
	lx := &rs.lex
	for i := range sc.toks {
		t := &sc.toks[i]
		t.lexOff = int32(len(sc.lex))
		switch t.kind {
		case tWord, tEmoji, tNum:
			w := sc.norm[t.s:t.e]
			sc.lex = lx.resolveToken(sc.lex, w, t.stretched, &sc.buf)
			if t.poss && len(w) > 2 {
				sc.lex = lx.resolveToken(sc.lex, w[:len(w)-1], false, &sc.buf)
			}
			wi := lx.info[string(w)]
			if t.kind == tWord && len(sc.lex) == int(t.lexOff) && !wi.everyday && !wi.isNum && len(w) >= 4 {
				if painNext, painNear := sc.painBeside(lx, i); (painNext || painNear) && lx.notTypos[string(w)] {
					// A real word one letter off a body part, in a
					// symptom phrase ("chess pain", "dolor en el
					// techo"), reads as the part; alone it stays
					// itself. One off another sign word right before
					// a pain word ("chesty pain") is an unread body
					// part: asked about, never reassured as soreness.
					sc.lex = lx.nearPart(sc.lex, w, &sc.buf)
					t.vocab = len(sc.lex) == int(t.lexOff) && painNext
				}
			}
			if t.kind == tWord && i+1 < len(sc.toks) && sc.toks[i+1].kind == tWord {
				// Voice-to-text splits a sign word it does not know
				// into words it does: "seize your", "new monia",
				// "heart a tack". The pair read as one word may be
				// the sign word; the first word then carries it.
				n := sc.toks[i+1]
				if out, ok := lx.joinedSign(sc.lex[:t.lexOff], w, sc.norm[n.s:n.e], len(sc.lex) == int(t.lexOff), &sc.join, &sc.buf); ok {
					sc.lex = out
				}
			}
			for _, id := range sc.lex[t.lexOff:] {
				if lx.vocab[id] {
					t.vocab = !wi.everyday
					break
				}
			}
			if t.kind == tWord {
				if wi.isNum {
					t.isNum, t.num = true, wi.num
				}
				t.flags |= wi.flags
			}
		}
		t.lexN = int32(len(sc.lex)) - t.lexOff
	}
}

// painBeside reports whether the word after token i is a pain word of
// fuzzy.part_pains (next), or, when token i ends its clause, one of the
// three words before it is, with no punctuation between (near: "dolor en
// el ...", "pain in my ..."; "el dolor de hecho mejoró" is no pair).
func (sc *scratch) painBeside(lx *lexicon, i int) (next, near bool) {
	if j := i + 1; j < len(sc.toks) && sc.toks[j].kind == tWord {
		next = lx.info[string(sc.norm[sc.toks[j].s:sc.toks[j].e])].pain
		if !next {
			return false, false
		}
	}
	for j := i - 1; j >= 0 && j >= i-3; j-- {
		tk := &sc.toks[j]
		if tk.kind != tWord {
			break
		}
		if lx.info[string(sc.norm[tk.s:tk.e])].pain {
			near = true
			break
		}
	}
	return next, near
}

func (sc *scratch) tokMatches(t *token, e *elem) bool {
	if e.num && t.isNum {
		// "in 2019" dates a complaint; "in two fingers" does not.
		return !e.year || (t.kind == tNum && t.num >= 1900 && t.num <= 2100)
	}
	if e.slash && t.kind == tSlash {
		return true
	}
	for _, id := range sc.lex[t.lexOff : t.lexOff+t.lexN] {
		for _, want := range e.ids {
			if id == want {
				return true
			}
		}
	}
	return false
}

// matchRest matches elements k.. of p from token j, recording literal
// positions in sc.pos.
func (rs *ruleset) matchRest(sc *scratch, p *pattern, k int, j int) (int, bool) {
	if k == len(p.elems) {
		return j, true
	}
	e := &p.elems[k]
	n := len(sc.toks)
	for skip := 0; skip <= int(e.gap); skip++ {
		t := j + skip
		if t >= n {
			return 0, false
		}
		if skip > 0 {
			prev := &sc.toks[t-1]
			if prev.kind == tStop || (prev.kind == tComma && !e.list) || prev.flags&fBreaker != 0 {
				return 0, false
			}
		}
		tk := &sc.toks[t]
		if tk.kind == tStop {
			return 0, false
		}
		if tk.kind == tComma {
			if e.list && skip < int(e.gap) {
				continue // "~" reads across a list: "red, hot and swollen"
			}
			return 0, false // phrases do not reach across clauses
		}
		if sc.tokMatches(tk, e) {
			sc.pos = append(sc.pos, int32(t))
			if end, ok := rs.matchRest(sc, p, k+1, t+1); ok {
				return end, true
			}
			sc.pos = sc.pos[:len(sc.pos)-1]
		}
	}
	return 0, false
}

func (rs *ruleset) tryAt(sc *scratch, pi int32, i int) {
	if sc.tried[pi] == int32(i)+1 {
		return
	}
	sc.tried[pi] = int32(i) + 1
	p := &rs.patterns[pi]
	off := len(sc.pos)
	sc.pos = append(sc.pos, int32(i))
	end, ok := rs.matchRest(sc, p, 1, i+1)
	if !ok {
		sc.pos = sc.pos[:off]
		return
	}
	sc.cands = append(sc.cands, cand{
		p: pi, start: int32(i), end: int32(end), posOff: int32(off), posN: int32(len(sc.pos) - off),
		nEl: int16(len(p.elems)), prio: rolePrio[p.role],
		key: candKey(int16(len(p.elems)), rolePrio[p.role], int32(i), int32(end)),
	})
}

// candidates finds every pattern match in the message.
func (rs *ruleset) candidates(sc *scratch) {
	if len(sc.tried) < len(rs.patterns) {
		sc.tried = make([]int32, len(rs.patterns))
	}
	clear(sc.tried)
	for i := range sc.toks {
		t := &sc.toks[i]
		var next []int32 // lexemes of the next token, if it is a word
		if i+1 < len(sc.toks) {
			if u := &sc.toks[i+1]; u.kind == tWord || u.kind == tNum || u.kind == tEmoji {
				next = sc.lex[u.lexOff : u.lexOff+u.lexN]
			}
		}
		for _, id := range sc.lex[t.lexOff : t.lexOff+t.lexN] {
			for _, pi := range rs.byFirst[id] {
				rs.tryAt(sc, pi, i)
			}
			pairs := rs.byPair[id]
			if len(pairs) == 0 {
				continue
			}
			for _, id2 := range next {
				k, _ := slices.BinarySearchFunc(pairs, id2, func(r pairRef, v int32) int { return int(r.second - v) })
				for ; k < len(pairs) && pairs[k].second == id2; k++ {
					rs.tryAt(sc, pairs[k].p, i)
				}
			}
		}
		if t.isNum {
			for _, pi := range rs.numFirst {
				rs.tryAt(sc, pi, i)
			}
		}
	}
}

// claim keeps the longest non-overlapping matches: a longer phrase always
// beats a shorter one inside it, so "can't breathe" is a sign and not a
// negation of "breathe", and "not sure" is not a negation.
func (rs *ruleset) claim(sc *scratch) {
	slices.SortFunc(sc.cands, func(a, b cand) int { return cmp.Compare(a.key, b.key) })
	// Time expressions never compete: "for 3 days" is both a duration and a
	// sign of persistence. They only stop a score from reading their number.
	for _, c := range sc.cands {
		p := &rs.patterns[c.p]
		if p.role != rTime {
			continue
		}
		pos := sc.pos[c.posOff : c.posOff+c.posN]
		sc.spans = append(sc.spans, span{p: c.p, role: p.role, arg: p.arg, start: c.start, end: c.end,
			first: pos[0], lastL: pos[len(pos)-1], posOff: c.posOff, posN: c.posN})
		for _, t := range pos {
			sc.toks[t].timeClaim = true
			sc.toks[t].timeLen = max(sc.toks[t].timeLen, int8(c.nEl))
		}
	}
	for _, c := range sc.cands {
		p := &rs.patterns[c.p]
		if p.role == rTime {
			continue
		}
		pos := sc.pos[c.posOff : c.posOff+c.posN]
		if p.role == rPseudo && rs.perfectNext(sc, pos[len(pos)-1]) {
			// English "no he ..." is no negation ("no he fainted"), but
			// Spanish "no he vomitado" is one: a pseudo-negation ending on
			// a perfect auxiliary followed by a participle gives way to
			// the negation under it.
			continue
		}
		free, ok := 0, true
		for _, t := range pos {
			tk := &sc.toks[t]
			switch {
			case p.role == rScore && tk.timeClaim && int8(c.nEl) <= tk.timeLen:
				// "at 3" is a time, but "at 8 out of 10" a score.
				ok = false
			case tk.claim == 0:
				free++
			case p.role == rSign && sc.spans[tk.claim-1].role == rSign:
				// Two signs may share a word ("stabbing pain in my chest" is
				// sharp pain and chest pain), unless one lies wholly inside
				// the other, where the longer reading wins.
			default:
				ok = false
			}
		}
		if !ok || free == 0 {
			continue
		}
		sc.spans = append(sc.spans, span{p: c.p, role: p.role, arg: p.arg, start: c.start, end: c.end,
			first: pos[0], lastL: pos[len(pos)-1], posOff: c.posOff, posN: c.posN})
		id := int32(len(sc.spans))
		for _, t := range pos {
			if sc.toks[t].claim == 0 {
				sc.toks[t].claim = id
			}
		}
	}
	// Order spans by position and renumber the claims.
	slices.SortFunc(sc.spans, func(a, b span) int { return int(a.start - b.start) })
	for i := range sc.toks {
		sc.toks[i].claim = 0
	}
	for i := range sc.spans {
		s := &sc.spans[i]
		if s.role == rTime {
			continue
		}
		for _, t := range sc.pos[s.posOff : s.posOff+s.posN] {
			if sc.toks[t].claim == 0 {
				sc.toks[t].claim = int32(i) + 1
			}
		}
	}
}

// perfectNext reports whether token t is a Spanish perfect auxiliary ("he",
// "ha", "hemos") followed at once by a participle ("vomitado", "tenido",
// "visto"), so that "no he vomitado" reads as a negation of what follows.
func (rs *ruleset) perfectNext(sc *scratch, t int32) bool {
	if sc.toks[t].flags&fAux == 0 || int(t)+1 >= len(sc.toks) {
		return false
	}
	u := &sc.toks[t+1]
	if u.kind != tWord {
		return false
	}
	if u.flags&fPart != 0 {
		return true
	}
	w := sc.norm[u.s:u.e]
	for _, end := range rs.lex.partEnds {
		if len(w) >= len(end)+3 && string(w[len(w)-len(end):]) == end {
			return true
		}
	}
	return false
}

// clauses numbers clauses and sentences. A clause ends at a comma, at
// sentence punctuation, and where a terminator ("but") or a new subject
// ("my son") begins.
func (rs *ruleset) clauses(sc *scratch) {
	n := len(sc.toks)
	if cap(sc.spanStart) < n {
		sc.spanStart = make([]int32, n)
	}
	sc.spanStart = sc.spanStart[:n]
	clear(sc.spanStart)
	for i := range sc.spans {
		switch sc.spans[i].role {
		case rTerm, rChild, rOther, rPronoun, rAcq, rNotPatient:
			sc.spanStart[sc.spans[i].start] = 1 // a new clause starts here
		}
	}
	var cl, se int32
	for t := 0; t < n; t++ {
		if sc.spanStart[t] != 0 {
			cl++
		}
		tk := &sc.toks[t]
		tk.clause, tk.sent = cl, se
		switch tk.kind {
		case tComma:
			if tk.flags&fParen == 0 {
				cl++
			}
		case tStop:
			cl++
			se++
		}
	}
	for i := range sc.spans {
		s := &sc.spans[i]
		s.clause, s.sent = sc.toks[s.start].clause, sc.toks[s.start].sent
	}
}

// listContinues reports whether a negated list goes on after a comma at
// t-1: only sign phrases, commas and list words up to a closing "or".
func (sc *scratch) listContinues(t int, clinical bool) bool {
	sawSign := false
	for end := min(len(sc.toks), t+maxListLook); t < end; t++ {
		tk := &sc.toks[t]
		if tk.kind == tStop {
			return false
		}
		if tk.claim > 0 && sc.spans[tk.claim-1].role == rSign {
			if clinical {
				// "denies fever, chest pain, palpitations": a clinical
				// list negator reads every sign of its comma list, with or
				// without a closing "or", as long as the item after the
				// comma is a sign.
				return true
			}
			sawSign = true
			continue
		}
		if tk.kind == tComma {
			continue
		}
		if tk.flags&fListEnd != 0 {
			if sawSign {
				return true
			}
			// ", or dizziness": the closing "or" comes first; a sign must follow.
			for u := t + 1; u < min(len(sc.toks), t+maxListLook); u++ {
				if c := sc.toks[u].claim; c > 0 && sc.spans[c-1].role == rSign {
					return true
				}
				if sc.toks[u].flags&fListWord == 0 {
					return false
				}
			}
			return false
		}
		if tk.flags&fListWord != 0 {
			continue
		}
		return false
	}
	return false
}

// maxListLook bounds how far a list is read ahead, and maxScope how many
// words any trigger reaches, keeping the cost linear in the message length.
const (
	maxListLook = 40
	maxScope    = 40
)

// forwardScope returns one past the last token a trigger ending at from
// reaches. window limits the words (0: the whole clause); clauseStart stops
// at a word such as "my" or "it" two or more words in, which usually opens a
// new statement ("didn't sleep well my head hurts").
func (sc *scratch) forwardScope(from int32, window int, clauseStart bool) int32 {
	return sc.forwardScopeStop(from, window, clauseStart, 0, 0)
}

// Options of forwardScopeStop.
const (
	scopeList     uint8 = 1 << iota // a clinical list negator: reads a comma list of signs whole
	scopeSubject                    // may open on the person it is about ("if my son faints")
	scopeContrast                   // a negation: ends where a contrast follows a negated sign ("not sore its sharp")
)

// forwardScopeStop is forwardScope that also stops at a word flagged stop
// two or more words in: "can I get help I can't breathe" asks nothing about
// the breathing. With scopeContrast it stops at a contrast word
// ("its", "thats", "es") once a sign has been read in scope: "its not sore
// its SHARP" denies the soreness and reports the sharp pain, with or
// without the comma.
func (sc *scratch) forwardScopeStop(from int32, window int, clauseStart bool, stop uint16, opts uint8) int32 {
	n := int32(len(sc.toks))
	if from <= 0 || from >= n {
		return from
	}
	cl := sc.toks[from-1].clause
	off := 0
	var negated int32 // the claim of the last sign read in scope, 0 if none
	t := from
	for ; t < n; t++ {
		tk := &sc.toks[t]
		if tk.kind == tStop {
			break
		}
		if negated != 0 && tk.flags&fContrast != 0 && tk.claim != negated {
			break
		}
		if opts&scopeContrast != 0 && tk.claim > 0 && sc.spans[tk.claim-1].role == rSign {
			negated = tk.claim
		}
		if tk.kind == tComma {
			// A list reads across commas, never across a parenthesis.
			if t+1 < n && tk.flags&fParen == 0 && sc.listContinues(int(t)+1, opts&scopeList != 0) {
				cl = sc.toks[t+1].clause
				continue
			}
			break
		}
		if tk.clause != cl {
			if off == 0 && opts&scopeSubject != 0 && tk.claim > 0 && isSubject(sc.spans[tk.claim-1].role) {
				// "what if my son faints": the person named right after a
				// hypothetical is who it is about, not a new statement.
				cl = tk.clause
			} else {
				break
			}
		}
		if (window > 0 && off >= window) || off >= maxScope {
			break
		}
		if clauseStart && off >= 2 && tk.flags&fClauseStart != 0 && tk.claim == 0 && (opts&scopeList == 0 || tk.flags&fListWord == 0) {
			break
		}
		if stop != 0 && off >= 2 && tk.flags&stop != 0 && (tk.claim == 0 || sc.spans[tk.claim-1].role == rFirst) {
			break
		}
		if tk.kind != tSlash {
			off++
		}
	}
	return t
}

// simile reports whether a hypothetical or conditional span tr is the "if"
// of a simile ("feels as if a knife", "siento como si me clavaran un
// cuchillo"): what follows describes a sensation felt now, so it is read as
// a report.
func (sc *scratch) simile(tr *span) bool {
	return tr.start > 0 && sc.toks[tr.start-1].flags&fSimile != 0
}

// affirmedAfter reports whether the spans after a question hold a report
// that it is the patient's own ("is pus normal? mine has some", "¿es
// normal? a mí me pasa"): the question is then not a general one.
func affirmedAfter(after []span) bool {
	for k := range after {
		if after[k].role == rAffirm {
			return true
		}
	}
	return false
}

// personal reports whether the sentence of span tr has a word by which the
// patient speaks of themself ("i", "my").
func (sc *scratch) personal(tr *span) bool {
	for t := int(tr.start); t >= 0 && int(tr.start)-t < maxScope && sc.toks[t].sent == tr.sent; t-- {
		if sc.toks[t].flags&fPersonal != 0 {
			return true
		}
	}
	for t := int(tr.start) + 1; t < len(sc.toks) && t-int(tr.start) < maxScope && sc.toks[t].sent == tr.sent; t++ {
		if sc.toks[t].flags&fPersonal != 0 {
			return true
		}
	}
	return false
}

// answers negates a checklist answer: a sentence that is only a negation
// ("no", "nope", "none") right after a sentence ending in "?" or ":" negates
// the signs of that sentence ("chest pain? no").
func (rs *ruleset) answers(sc *scratch) {
	sp := sc.spans
	for i := range sp {
		tr := &sp[i]
		if tr.role != rNeg && tr.role != rNegPost {
			continue
		}
		// The trigger must fill its sentence.
		t0 := tr.start
		if t0 == 0 || sc.toks[t0-1].kind != tStop || sc.toks[t0-1].flags&fAsked == 0 {
			continue
		}
		if tr.end < int32(len(sc.toks)) && sc.toks[tr.end].kind != tStop {
			continue
		}
		prev := sc.toks[t0-1].sent
		for j := i - 1; j >= 0 && sp[j].sent >= prev; j-- {
			if sp[j].sent == prev && isTarget(sp[j].role) {
				sp[j].neg = true
			}
		}
	}
}

func negOpts(arg int32) uint8 {
	if arg == negList {
		return scopeList
	}
	return 0
}

// isSubject reports whether r names who a statement is about.
func isSubject(r role) bool {
	return r == rChild || r == rOther || r == rPronoun || r == rAcq || r == rNotPatient
}

func isTarget(r role) bool {
	return r == rSign || r == rMod || r == rTime || r == rScore || r == rNormalCheck
}

// scopes applies negation, hypothetical, question and subject triggers to
// the spans they reach.
func (rs *ruleset) scopes(sc *scratch) {
	sp := sc.spans
	var lastSubj uint8
	for i := range sp {
		tr := &sp[i]
		var lo, hi int32
		switch tr.role {
		case rNeg:
			lo, hi = tr.end, sc.forwardScopeStop(tr.end, rs.negWin, true, 0, negOpts(tr.arg)|scopeContrast)
		case rHypo, rQuestion:
			if tr.role == rHypo && sc.simile(tr) {
				continue
			}
			lo, hi = tr.end, sc.forwardScopeStop(tr.end, 0, false, fPersonal, scopeSubject)
		case rCond:
			if sc.simile(tr) {
				continue
			}
			lo, hi = tr.end, sc.forwardScopeStop(tr.end, rs.condWin, true, 0, scopeSubject)
		case rFig:
			// "laughed so hard she couldn't breathe", "almost passed out
			// from the price of parking": the whole clause is a figure of
			// speech for the signs that are used that way.
			for j := i - 1; j >= 0 && sp[j].clause == tr.clause; j-- {
				sp[j].fig |= uint8(tr.arg)
			}
			// It reads on into a clause that only opens on a person, with
			// no comma between ("laughed so hard she couldn't breathe").
			cl := tr.clause
			for j := i + 1; j < len(sp) && sp[j].sent == tr.sent; j++ {
				if sp[j].clause != cl {
					st := sp[j].start
					if !isSubject(sp[j].role) || st == 0 || sc.toks[st-1].kind == tComma || sc.toks[st-1].kind == tStop {
						break
					}
					cl = sp[j].clause
				}
				sp[j].fig |= uint8(tr.arg)
			}
			continue
		case rMedia:
			// "the bus driver fainted on the news": the whole clause
			for j := i - 1; j >= 0 && sp[j].clause == tr.clause; j-- {
				sp[j].subj = subjNone
			}
			for j := i + 1; j < len(sp) && sp[j].clause == tr.clause; j++ {
				sp[j].subj = subjNone
			}
			continue
		case rNegPost:
			// nearest sign before it in the same clause
			for j := i - 1; j >= 0; j-- {
				if sp[j].clause != tr.clause {
					break
				}
				if sp[j].role == rSign {
					sp[j].neg = true
					break
				}
			}
			continue
		case rChild, rOther, rPronoun, rAcq, rNotPatient:
			subj := subjChild
			switch tr.role {
			case rOther:
				subj = subjOther
			case rAcq:
				subj = subjAcq
			case rNotPatient:
				subj = subjNone
			case rPronoun:
				subj = lastSubj
				if subj == subjSelf {
					subj = subjOther
				}
			}
			lastSubj = subj
			for j := i + 1; j < len(sp); j++ {
				if r := sp[j].role; sp[j].sent != tr.sent || r == rFirst || r == rChild || r == rOther || r == rPronoun || r == rAcq || r == rNotPatient {
					break
				}
				sp[j].subj = subj
			}
			continue
		default:
			continue
		}
		if tr.role != rQuestion {
			for t := lo; t < hi; t++ {
				sc.toks[t].scoped = true
				sc.toks[t].negated = sc.toks[t].negated || tr.role == rNeg
			}
		}
		// Spans are ordered by start: those in scope follow the trigger, and
		// a phrase the trigger sits inside ("face is not swelling") starts at
		// most a phrase's length before it.
		from := i
		for from > 0 && sp[from-1].start >= tr.start-maxElems*(wideGap+1) {
			from--
		}
		for j := from; j < len(sp) && sp[j].start < hi; j++ {
			s := &sp[j]
			if !isTarget(s.role) {
				continue
			}
			inScope := s.start >= lo && s.start < hi
			// A trigger inside a gapped phrase ("face is not swelling")
			// applies to that phrase, and a gapped question ("is swelling
			// normal?") applies to what it encloses.
			inside := s.first < tr.start && s.lastL > tr.start
			if tr.role == rQuestion || tr.role == rHypo {
				inScope = inScope || (s.start > tr.start && s.start < tr.lastL)
			}
			if !inScope && !inside {
				continue
			}
			switch tr.role {
			case rNeg:
				s.neg = true
			case rHypo, rCond:
				s.hypo = true
			case rQuestion:
				if s.start > tr.start && s.start < tr.lastL && !sc.personal(tr) && !affirmedAfter(sp[i+1:]) {
					// "is fainting common?": a general question about a
					// sign it encloses, with no word of the patient's own
					// and no "mine does" after it.
					s.hypo = true
				} else if inScope {
					s.question = true
				}
			}
		}
	}
	// A story from elsewhere ("the news said someone fainted") is no
	// report, whoever it names afterwards in its clause.
	for i := range sp {
		if sp[i].role != rMedia {
			continue
		}
		for j := i - 1; j >= 0 && sp[j].clause == sp[i].clause; j-- {
			sp[j].subj = subjNone
		}
		// It reads on into a clause that only opens on a person, with no
		// comma between ("the news said someone fainted").
		cl := sp[i].clause
		for j := i + 1; j < len(sp) && sp[j].sent == sp[i].sent; j++ {
			if sp[j].clause != cl {
				st := sp[j].start
				if !isSubject(sp[j].role) || st == 0 || sc.toks[st-1].kind == tComma || sc.toks[st-1].kind == tStop {
					break
				}
				cl = sp[j].clause
			}
			sp[j].subj = subjNone
		}
	}
}
