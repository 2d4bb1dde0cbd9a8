package triage

import (
	"unicode"
	"unicode/utf8"
)

// tokKind says what a token is. Words, numbers and emoji carry meaning;
// punctuation tokens only mark where clauses and sentences end.
type tokKind uint8

const (
	tWord  tokKind = iota // letters (lowercased, accents folded, apostrophes dropped)
	tNum                  // digits, optionally with one decimal point
	tEmoji                // one pictograph
	tSlash                // "/", kept for pain scores such as 8/10
	tComma                // soft clause break: , ( ) [ ] and a spaced dash
	tStop                 // sentence end: . ! ? ; : and line breaks
)

// token is one unit of a normalised message. Offsets point into scratch.norm.
type token struct {
	s, e      int32
	num       float64 // value of a number or number word
	lexOff    int32   // first lexeme id in scratch.lex
	lexN      int32   // number of lexeme ids
	clause    int32
	sent      int32
	claim     int32 // index+1 of the accepted span owning this token
	kind      tokKind
	isNum     bool // a number or a number word
	stretched bool // had a letter repeated three or more times ("sooo")
	poss      bool // ended in 's ("foot's", "it's"): also read without the s
	timeClaim bool // part of a time expression, so not a score
	timeLen   int8 // elements of the longest time expression claiming it
	vocab     bool // a word of a sign's vocabulary, or a typo of one
	scoped    bool // inside the reach of a negation or a hypothetical
	negated   bool // inside the reach of a negation
	flags     uint16
}

// Token flags from the single-word context lists.
const (
	fClauseStart uint16 = 1 << iota
	fFiller
	fListWord
	fListEnd
	fBreaker
	fAsked    // a stop that was "?" or ":" ("chest pain? no", "dizziness: none")
	fPersonal // the patient speaks of themself ("i", "my"): a question is not general
	fParen    // a comma that is a parenthesis: an aside stays in its clause ("a fever last week (flu)")
	fContrast // after a negated sign, says what it is instead ("not sore its sharp", "no es X es Y")
	fSimile   // before "if" or "si", a simile of what is felt ("as if", "como si"), not a condition
	fAux      // a Spanish perfect auxiliary ("he", "ha", "hemos"): "no he vomitado" is a negation
	fPart     // an irregular Spanish participle ("visto", "hecho"); regular ones are told by their ending
	fRecent   // says a thing is recent ("today", "tonight", "anoche"): "once" then dates nothing
)

// tokenize appends the tokens of s to sc, stopping at maxTokens.
func (sc *scratch) tokenize(s string, maxTokens int) {
	i := 0
	for i < len(s) && len(sc.toks) < maxTokens {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
				if j := sc.word(s, i); j > i {
					i = j
					continue
				}
			case c == '.' || c == '!' || c == ';' || c == '\n' || c == '\r':
				sc.punct(tStop)
			case c == '?' || c == ':':
				sc.punct(tStop)
				if n := len(sc.toks); n > 0 && sc.toks[n-1].kind == tStop {
					sc.toks[n-1].flags |= fAsked
				}
			case c == ',':
				sc.punct(tComma)
			case c == '(' || c == ')' || c == '[' || c == ']':
				n := len(sc.toks)
				sc.punct(tComma)
				if len(sc.toks) > n {
					sc.toks[n].flags |= fParen
				}
			case c == '-':
				// A dash with a space on either side separates clauses; a
				// hyphen inside a word ("light-headed") only splits the word.
				if i == 0 || s[i-1] == ' ' || i+1 >= len(s) || s[i+1] == ' ' {
					sc.punct(tComma)
				}
			case c == '/':
				sc.punct(tSlash)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			i++
			continue
		case isLetterRune(r):
			if j := sc.word(s, i); j > i {
				i = j
				continue
			}
		case r == '…' || r == '。' || r == '\u2028' || r == '\u2029' || r == '！' || r == '？':
			sc.punct(tStop)
		case r == '—' || r == '–' || r == '¿' || r == '¡' || r == '，':
			sc.punct(tComma)
		case isEmoji(r):
			start := len(sc.norm)
			sc.norm = utf8.AppendRune(sc.norm, r)
			sc.emit(start, tEmoji, false)
		}
		i += size
	}
}

// punct appends a clause or sentence break, merging runs of punctuation.
func (sc *scratch) punct(k tokKind) {
	if k == tSlash {
		sc.toks = append(sc.toks, token{s: int32(len(sc.norm)), e: int32(len(sc.norm)), kind: tSlash})
		return
	}
	n := len(sc.toks)
	if n == 0 {
		return
	}
	last := &sc.toks[n-1]
	switch last.kind {
	case tStop:
		return
	case tComma:
		if k == tStop {
			last.kind = tStop
		}
		return
	}
	sc.toks = append(sc.toks, token{s: int32(len(sc.norm)), e: int32(len(sc.norm)), kind: k})
}

func (sc *scratch) emit(start int, k tokKind, stretched bool) {
	if start == len(sc.norm) {
		return
	}
	sc.toks = append(sc.toks, token{s: int32(start), e: int32(len(sc.norm)), kind: k, stretched: stretched})
}

// word reads a run of letters and digits starting at s[i], splitting it where
// letters meet digits ("48h" is 48 and h), and returns the index after it.
func (sc *scratch) word(s string, i int) int {
	for i < len(s) {
		r, size := decodeAt(s, i)
		if isDigitRune(r) {
			i = sc.number(s, i)
			continue
		}
		if !isLetterRune(r) {
			if isApostrophe(r) || unicode.Is(unicode.Mn, r) {
				i += size
				continue
			}
			break
		}
		start := len(sc.norm)
		last, run, stretched, poss := rune(-1), 0, false, false
		for i < len(s) && len(sc.norm)-start < maxWordBytes {
			r, size = decodeAt(s, i)
			if isApostrophe(r) {
				// "foot's" and "it's": remember the s was a suffix.
				if i+size < len(s) && (s[i+size] == 's' || s[i+size] == 'S') &&
					(i+size+1 >= len(s) || !isLetterRune(rune(s[i+size+1]))) {
					poss = true
				}
				i += size
				continue
			}
			if r >= utf8.RuneSelf && unicode.Is(unicode.Mn, r) {
				i += size
				continue
			}
			if !isLetterRune(r) {
				break
			}
			r = fold(r)
			if r == last {
				run++
				if run >= 2 { // keep at most two of a repeated letter: "sooo" -> "soo"
					stretched = true
					i += size
					continue
				}
			} else {
				last, run = r, 0
			}
			sc.norm = utf8.AppendRune(sc.norm, r)
			i += size
		}
		// An over-long "word" is cut; skip the rest of it.
		for i < len(s) {
			r, size = decodeAt(s, i)
			if !isLetterRune(r) {
				break
			}
			i += size
		}
		sc.emit(start, tWord, stretched)
		if poss && len(sc.toks) > 0 && sc.toks[len(sc.toks)-1].s == int32(start) {
			sc.toks[len(sc.toks)-1].poss = true
		}
	}
	return i
}

const maxWordBytes = 64

// number reads digits with at most one decimal point or comma between digits.
func (sc *scratch) number(s string, i int) int {
	start := len(sc.norm)
	var v, scale float64 = 0, 0
	digits := 0
	for i < len(s) {
		c := s[i]
		if c >= '0' && c <= '9' {
			if digits < 12 {
				if scale == 0 {
					v = v*10 + float64(c-'0')
				} else {
					v += float64(c-'0') * scale
					scale /= 10
				}
				sc.norm = append(sc.norm, c)
			}
			digits++
			i++
			continue
		}
		if (c == '.' || c == ',') && scale == 0 && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9' && digits > 0 {
			scale = 0.1
			sc.norm = append(sc.norm, '.')
			i++
			continue
		}
		break
	}
	if start == len(sc.norm) {
		return i + 1
	}
	sc.toks = append(sc.toks, token{s: int32(start), e: int32(len(sc.norm)), kind: tNum, num: v, isNum: true})
	return i
}

func decodeAt(s string, i int) (rune, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

func isDigitRune(r rune) bool { return r >= '0' && r <= '9' }

func isLetterRune(r rune) bool {
	if r < utf8.RuneSelf {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
	}
	return r != utf8.RuneError && unicode.IsLetter(r)
}

func isApostrophe(r rune) bool {
	return r == '\'' || r == '’' || r == 'ʼ' || r == '`' || r == '‘' || r == '´'
}

// isEmoji reports whether r is a pictograph worth a token. Joiners,
// variation selectors and skin tones are dropped, so "😵‍💫" reads as 😵 💫.
func isEmoji(r rune) bool {
	switch {
	case r >= 0x1F3FB && r <= 0x1F3FF:
		return false
	case r >= 0x1F000 && r <= 0x1FAFF:
		return true
	case r >= 0x2600 && r <= 0x27BF:
		return true
	case r == 0x2763 || r == 0x2764 || r == 0x2B50:
		return true
	}
	return false
}

// fold lowercases r and removes the accents of common Latin letters, so
// "MAREADO", "mareado" and "máreado" read the same and "desmayé" matches "desmaye".
func fold(r rune) rune {
	if r < utf8.RuneSelf {
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}
	r = unicode.ToLower(r)
	switch r {
	case 'à', 'á', 'â', 'ã', 'ä', 'å', 'ā', 'ă', 'ą':
		return 'a'
	case 'ç', 'ć', 'č':
		return 'c'
	case 'è', 'é', 'ê', 'ë', 'ē', 'ė', 'ę', 'ě':
		return 'e'
	case 'ì', 'í', 'î', 'ï', 'ī', 'į', 'ı':
		return 'i'
	case 'ñ', 'ń', 'ň':
		return 'n'
	case 'ò', 'ó', 'ô', 'õ', 'ö', 'ø', 'ō', 'ő':
		return 'o'
	case 'ù', 'ú', 'û', 'ü', 'ū', 'ů', 'ű', 'ų':
		return 'u'
	case 'ý', 'ÿ':
		return 'y'
	case 'ś', 'š', 'ş':
		return 's'
	case 'ź', 'ż', 'ž':
		return 'z'
	}
	return r
}
