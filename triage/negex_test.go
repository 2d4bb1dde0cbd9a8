package triage

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"
)

// negatedAt reads text with c's rules the way Triage does, up to and
// including the scope passes, with the bytes text[start:end] standing for
// one sign, and reports whether that sign falls inside a negation scope
// (neg) and inside any scope at all: negation, hypothetical or question
// (scoped). It lets a test ask about a finding the rules do not know, such as
// the conditions of a clinical corpus, with the same scope machinery a known
// sign gets. The finding must start and end at word boundaries; it is read
// only as a sign, so classifier behaviour is untouched.
func (c *Classifier) negatedAt(text string, start, end int) (neg, scoped bool) {
	rs := c.rs
	sc := c.pool.Get().(*scratch)
	defer c.pool.Put(sc)
	sc.reset()
	// Tokenizing in three pieces gives the finding's token range; the pieces
	// meet at word boundaries, so the tokens are those of the whole text.
	sc.tokenize(text[:start], maxTokens)
	a := len(sc.toks)
	sc.tokenize(text[start:end], maxTokens)
	b := len(sc.toks)
	sc.tokenize(text[end:], maxTokens)
	sc.words = 0
	for i := range sc.toks {
		if k := sc.toks[i].kind; k == tWord || k == tNum || k == tEmoji {
			sc.words++
		}
	}
	rs.lexemes(sc)
	rs.candidates(sc)
	rs.claim(sc)

	// The finding becomes one sign span over its words (arg -1 marks it),
	// owning its tokens as a recognised sign would.
	off := int32(len(sc.pos))
	for t := a; t < b; t++ {
		if k := sc.toks[t].kind; k == tWord || k == tNum || k == tEmoji {
			sc.pos = append(sc.pos, int32(t))
		}
	}
	n := int32(len(sc.pos)) - off
	if n == 0 {
		return false, false
	}
	pos := sc.pos[off:]
	sc.spans = append(sc.spans, span{role: rSign, arg: -1, start: pos[0], end: pos[n-1] + 1,
		first: pos[0], lastL: pos[n-1], posOff: off, posN: n})
	slices.SortStableFunc(sc.spans, func(x, y span) int { return int(x.start - y.start) })
	for i := range sc.toks {
		sc.toks[i].claim = 0
	}
	for i := range sc.spans {
		s := &sc.spans[i]
		if s.role == rTime {
			continue
		}
		for _, t := range sc.pos[s.posOff : s.posOff+s.posN] {
			if sc.toks[t].claim == 0 || s.arg == -1 && s.role == rSign {
				sc.toks[t].claim = int32(i) + 1
			}
		}
	}

	rs.clauses(sc)
	rs.scopes(sc)
	rs.answers(sc)
	for i := range sc.spans {
		if s := &sc.spans[i]; s.role == rSign && s.arg == -1 {
			return s.neg, s.neg || s.hypo || s.question
		}
	}
	return false, false
}

// TestNegatedAt checks the harness against Triage itself: for a sign the
// rules know, negatedAt says negated exactly when Triage leaves the sign out,
// so what TestNegExCorpus measures is the classifier's own negation.
func TestNegatedAt(t *testing.T) {
	c := Default()
	tests := []struct {
		text, finding, sign string
		neg, scoped         bool
	}{
		{"I have chest pain", "chest pain", "chest_pain", false, false},
		{"no chest pain", "chest pain", "chest_pain", true, true},
		{"no fever, chills or chest pain", "chest pain", "chest_pain", true, true},
		{"denies fever, chest pain or palpitations", "chest pain", "chest_pain", true, true},
		{"chest pain? no", "chest pain", "chest_pain", true, true},
		{"I don't have a fever but my chest hurts", "my chest hurts", "chest_pain", false, false},
		{"what if I get chest pain", "chest pain", "", false, true},
	}
	for _, tc := range tests {
		i := strings.Index(tc.text, tc.finding)
		neg, scoped := c.negatedAt(tc.text, i, i+len(tc.finding))
		if neg != tc.neg || scoped != tc.scoped {
			t.Errorf("negatedAt(%q, %q) = %v, %v, want %v, %v", tc.text, tc.finding, neg, scoped, tc.neg, tc.scoped)
		}
		if tc.sign == "" {
			continue
		}
		if got := slices.Contains(c.Triage(tc.text, 20).Signs, tc.sign); got == neg {
			t.Errorf("%q: Triage reports %s = %v, but negatedAt says negated = %v", tc.text, tc.sign, got, neg)
		}
	}
}

// negexItem is one annotated condition of the NegEx test set.
type negexItem struct {
	line       int
	finding    string
	sentence   string
	negated    bool
	start, end int  // the finding in sentence
	found      bool // false when the finding runs past its sentence
}

// readNegEx reads the NegEx test set (see testdata/negex/NOTICE): tab
// separated number, condition, sentence, Affirmed|Negated, CRLF line ends,
// sentences CSV-quoted when they hold a comma.
func readNegEx(t testing.TB, path string) []negexItem {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var items []negexItem
	for i, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 {
			continue
		}
		f := strings.Split(string(line), "\t")
		if len(f) != 4 {
			t.Fatalf("%s:%d: %d fields, want 4", path, i+1, len(f))
		}
		it := negexItem{line: i + 1, finding: strings.TrimSpace(unquoteCSV(f[1])), sentence: unquoteCSV(f[2])}
		switch f[3] {
		case "Negated":
			it.negated = true
		case "Affirmed":
		default:
			t.Fatalf("%s:%d: negation status %q", path, i+1, f[3])
		}
		it.start, it.end, it.found = locate(it.sentence, it.finding)
		items = append(items, it)
	}
	return items
}

func unquoteCSV(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return strings.ReplaceAll(s[1:len(s)-1], `""`, `"`)
	}
	return s
}

// locate finds finding in sentence ignoring case, preferring the occurrence
// the annotator wrote in capitals, and widening it to whole words.
func locate(sentence, finding string) (start, end int, ok bool) {
	ls, lf := strings.ToLower(sentence), strings.ToLower(finding)
	start = -1
	for from := 0; ; {
		i := strings.Index(ls[from:], lf)
		if i < 0 {
			break
		}
		i += from
		if start < 0 {
			start = i
		}
		if occ := sentence[i : i+len(lf)]; occ == strings.ToUpper(occ) {
			start = i
			break
		}
		from = i + 1
	}
	if start < 0 || len(ls) != len(sentence) {
		return 0, 0, false
	}
	end = start + len(lf)
	isWord := func(c byte) bool {
		return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '\''
	}
	for start > 0 && isWord(sentence[start-1]) {
		start--
	}
	for end < len(sentence) && isWord(sentence[end]) {
		end++
	}
	return start, end, true
}

// TestNegExCorpus scores the negation scopes on the annotated sentences of
// the public NegEx project (Chapman et al. 2001; testdata/negex/NOTICE): for
// each condition, is it read as negated where the physician said so? The set
// is clinical notes, not patient texting, and is a measuring set: the rules
// are not tuned to it. The bar is the issue's: negation specificity above
// 95 % (NegEx reported 94.5 % in its paper). Sensitivity is held at a floor
// just below what was measured when the test was written (see minSens).
func TestNegExCorpus(t *testing.T) {
	// Measured when this test was written: specificity 98.3 % (1842/1874),
	// sensitivity 85.1 % (418/491), accuracy 95.1 % (2260/2365). The
	// sensitivity floor is that figure rounded down to a whole percent.
	const (
		minSpec = 0.95
		minSens = 0.85
	)
	c := Default()
	items := readNegEx(t, "testdata/negex/Annotations-1-120-random.txt")
	var tp, tn, fp, fn, hedged, unscored int
	for _, it := range items {
		if !it.found {
			// The annotator's condition runs on past the sentence the set
			// gives with it ("Pharynx good.  Moist mucous membranes" with
			// "Pharynx good."): there is no span to ask about.
			unscored++
			t.Logf("not scored, line %d: %q not in %q", it.line, it.finding, it.sentence)
			continue
		}
		neg, scoped := c.negatedAt(it.sentence, it.start, it.end)
		if scoped && !neg {
			hedged++
		}
		switch {
		case it.negated && neg:
			tp++
		case it.negated:
			fn++
			t.Logf("missed negation, line %d: %q in %q", it.line, it.finding, it.sentence)
		case neg:
			fp++
			t.Logf("false negation, line %d: %q in %q", it.line, it.finding, it.sentence)
		default:
			tn++
		}
	}
	spec := float64(tn) / float64(tn+fp)
	sens := float64(tp) / float64(tp+fn)
	acc := float64(tp+tn) / float64(len(items))
	t.Logf("NegEx corpus: %d annotations, %d scored (%d negated, %d affirmed), %d not scored (condition not in its sentence)",
		len(items), tp+fn+tn+fp, tp+fn, tn+fp, unscored)
	t.Logf("specificity %.1f %% (%d/%d affirmed read as affirmed)", 100*spec, tn, tn+fp)
	t.Logf("sensitivity %.1f %% (%d/%d negated read as negated)", 100*sens, tp, tp+fn)
	t.Logf("accuracy %.1f %%; %d findings read as not negated fell in a hypothetical or question scope", 100*acc, hedged)
	if len(items) != 2376 || unscored > 11 {
		t.Errorf("read %d annotations with %d not scored, want 2376 with 11", len(items), unscored)
	}
	if spec <= minSpec {
		t.Errorf("negation specificity %.1f %%, want above %.0f %%", 100*spec, 100*minSpec)
	}
	if sens < minSens {
		t.Errorf("negation sensitivity %.1f %%, want at least %.0f %%", 100*sens, 100*minSens)
	}
}
