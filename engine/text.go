package engine

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// MaxInputRunes is how much of a patient message the engine reads. Longer
// messages are cut (and the patient told), which bounds the work any input
// can cause.
const MaxInputRunes = 4000

// MaxOutputRunes bounds every text the engine sends, below Telegram's 4096
// and well above what any protocol text needs; adapters split further
// (Discord allows 2000).
const MaxOutputRunes = 4000

// Sanitize makes outside text safe to process and to quote: invalid UTF-8
// is replaced, control characters become spaces, runs of space collapse,
// and the result is cut at MaxInputRunes. It reports whether it cut.
func Sanitize(s string) (string, bool) {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	var b strings.Builder
	b.Grow(min(len(s), MaxInputRunes*4))
	n, cut := 0, false
	space := false
	for _, r := range s {
		if n >= MaxInputRunes {
			cut = true
			break
		}
		if r == '\n' || r == '\r' || r == '\t' || unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Cf, r) {
			r = ' '
		}
		if r == ' ' {
			if space {
				continue
			}
			space = true
		} else {
			space = false
		}
		b.WriteRune(r)
		n++
	}
	return strings.TrimSpace(b.String()), cut
}

// staffQuoteReplacer takes out of patient text what could close the quotes
// around it or pose as the bot's own markers.
var staffQuoteReplacer = strings.NewReplacer(`"`, "'", "[", "(", "]", ")")

// StaffQuote makes patient-supplied text (a display name, a message, an
// area) safe to quote in a message to staff. It is sanitized like message
// text, so it stays on one line and carries no control or bidirectional
// formatting characters that could reorder what staff read; double quotes
// become single quotes and square brackets parentheses, so the text can
// neither close the quotes it stands in nor forge a "[URGENT]" tag or an
// "[Acknowledge](link)". Platform markup (Discord markdown) is escaped by
// the adapter that renders the message.
func StaffQuote(s string) string {
	s, _ = Sanitize(s)
	return staffQuoteReplacer.Replace(s)
}

// Truncate cuts s to at most n runes, marking the cut with an ellipsis. It
// is the one truncation every package uses, so a cut always looks the same.
func Truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// norm lowercases s, turns punctuation into spaces and folds a few accents,
// so that matching works on "Dry-Needling!!" and "dry needling" alike. The
// result has single spaces and is padded with one space at each end, so a
// phrase " x y " matches whole words only.
func norm(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte(' ')
	space := true
	for _, r := range strings.ToLower(s) {
		switch r {
		case 'á', 'à', 'ä', 'â':
			r = 'a'
		case 'é', 'è', 'ë', 'ê':
			r = 'e'
		case 'í', 'ì', 'ï', 'î':
			r = 'i'
		case 'ó', 'ò', 'ö', 'ô':
			r = 'o'
		case 'ú', 'ù', 'ü', 'û':
			r = 'u'
		case 'ñ':
			r = 'n'
		case '’', '\'':
			continue // "don't" -> "dont", "i'm" -> "im"
		}
		if unicode.IsLetter(r) || unicode.IsDigit(r) || r == '?' || r == '/' {
			if r == '?' || r == '/' {
				if !space {
					b.WriteByte(' ')
				}
				b.WriteRune(r)
				b.WriteByte(' ')
				space = true
				continue
			}
			b.WriteRune(r)
			space = false
			continue
		}
		if !space {
			b.WriteByte(' ')
			space = true
		}
	}
	if !space {
		b.WriteByte(' ')
	}
	return b.String()
}

// hasPhrase reports whether the normalised text n contains the phrase as
// whole words.
func hasPhrase(n, phrase string, pr *Protocol) bool {
	p := pr.phrase(phrase)
	if p == " " {
		return false
	}
	return strings.Contains(n, p)
}

// phraseScore returns the length of the longest phrase found un-negated as
// whole words in n, or 0.
func phraseScore(n string, phrases []string, pr *Protocol) int {
	best := 0
	for _, ph := range phrases {
		best = max(best, normScore(n, pr.phrase(ph)))
	}
	return best
}

// normsScore is phraseScore for phrases already normalised.
func normsScore(n string, normed []string) int {
	best := 0
	for _, p := range normed {
		best = max(best, normScore(n, p))
	}
	return best
}

// normScore returns len(p) when the normalised phrase p occurs un-negated
// as whole words in n, or 0.
func normScore(n, p string) int {
	if p == " " {
		return 0
	}
	off := 0
	for {
		i := strings.Index(n[off:], p)
		if i < 0 {
			return 0
		}
		if !negatedBefore(n, off+i+1) {
			return len(p)
		}
		off += i + 1
	}
}

var numberWords = map[string]int{
	"zero": 0, "none": 0, "nothing": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
	"six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
	"cero": 0, "uno": 1, "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5, "seis": 6, "siete": 7, "ocho": 8, "nueve": 9, "diez": 10,
}

// ParseScore reads a 0-10 score from free text ("3", "3/10", "about 4",
// "seven out of ten"). It takes the first number found and reports false
// when there is none in range.
func ParseScore(text string, lo, hi int) (int, bool) {
	for _, w := range strings.Fields(norm(text)) {
		v, err := strconv.Atoi(w)
		if err != nil {
			var ok bool
			if v, ok = numberWords[w]; !ok {
				continue
			}
		}
		if v >= lo && v <= hi {
			return v, true
		}
		return 0, false
	}
	return 0, false
}

// ParseWhen reads when a session took place from a patient's words, relative
// to now in loc: "just now", "an hour ago", "2h ago", "30 min ago", "this
// morning", "today", "yesterday", "yesterday at 5pm", "10:30", "3pm",
// "2 days ago". A clock time later than now means the previous day. It
// reports false when it cannot read the text; the result is never after now.
func ParseWhen(text string, now time.Time, loc *time.Location) (time.Time, bool) {
	n := norm(text)
	w := strings.Fields(n)
	if len(w) == 0 || len(w) > 12 {
		return time.Time{}, false
	}
	local := now.In(loc)
	day := local
	has := func(p string) bool { return strings.Contains(n, " "+p+" ") }
	if has("yesterday") || has("ayer") {
		day = local.AddDate(0, 0, -1)
	}
	// A clock time anywhere in the text.
	if hh, mm, ok := clockTime(w); ok {
		t := time.Date(day.Year(), day.Month(), day.Day(), hh, mm, 0, 0, loc)
		if t.After(now.Add(10 * time.Minute)) {
			t = t.AddDate(0, 0, -1)
		}
		return clampPast(t, now), true
	}
	if has("half an hour") || has("half hour") || has("media hora") {
		return now.Add(-30 * time.Minute), true
	}
	// "N units ago" with N a number or word.
	for i := 0; i+1 < len(w); i++ {
		qty, ok := quantity(w[i])
		if !ok {
			continue
		}
		unit := w[i+1]
		var d time.Duration
		switch {
		case strings.HasPrefix(unit, "min") || unit == "m" || unit == "mins":
			d = time.Duration(qty * float64(time.Minute))
		case strings.HasPrefix(unit, "h") || strings.HasPrefix(unit, "hora"):
			d = time.Duration(qty * float64(time.Hour))
		case strings.HasPrefix(unit, "day") || strings.HasPrefix(unit, "dia"):
			d = time.Duration(qty * 24 * float64(time.Hour))
		default:
			continue
		}
		if d < 0 || d > 14*24*time.Hour {
			return time.Time{}, false
		}
		return now.Add(-d), true
	}
	// Compact forms: "2h", "30m", "2hrs".
	for _, x := range w {
		if v, unit, ok := splitNumUnit(x); ok {
			switch unit {
			case "h", "hr", "hrs", "hour", "hours":
				return now.Add(-time.Duration(v * float64(time.Hour))), v <= 14*24
			case "m", "min", "mins":
				return now.Add(-time.Duration(v * float64(time.Minute))), v <= 14*24*60
			}
		}
	}
	at := func(h int) (time.Time, bool) {
		t := time.Date(day.Year(), day.Month(), day.Day(), h, 0, 0, 0, loc)
		if t.After(now) {
			if day.Day() != local.Day() {
				return clampPast(t, now), true
			}
			return now.Add(-time.Hour), true
		}
		return t, true
	}
	switch {
	case has("half an hour") || has("half hour"):
		return now.Add(-30 * time.Minute), true
	case has("an hour") || has("a hour") || has("hour ago"):
		return now.Add(-time.Hour), true
	case has("just now") || has("right now") || n == " now " || n == " just " || has("ahora"):
		return now, true
	case has("this morning") || has("morning") || has("esta manana"):
		return at(9)
	case has("lunch") || has("noon") || has("midday"):
		return at(12)
	case has("this afternoon") || has("afternoon") || has("esta tarde"):
		return at(14)
	case has("this evening") || has("evening") || has("tonight") || has("last night") || has("night"):
		if has("last night") {
			day = local.AddDate(0, 0, -1)
		}
		return at(18)
	case has("yesterday") || has("ayer"):
		return now.Add(-24 * time.Hour), true
	case has("today") || has("hoy") || has("earlier"):
		return now.Add(-time.Hour), true
	}
	return time.Time{}, false
}

func clampPast(t, now time.Time) time.Time {
	if t.After(now) {
		return now
	}
	return t
}

func quantity(s string) (float64, bool) {
	switch s {
	case "a", "an", "one", "un", "una":
		return 1, true
	case "couple":
		return 2, true
	case "few", "several":
		return 3, true
	}
	if v, ok := numberWords[s]; ok {
		return float64(v), true
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || v > 1000 {
		return 0, false
	}
	return v, true
}

func splitNumUnit(s string) (float64, string, bool) {
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	if i == 0 || i == len(s) {
		return 0, "", false
	}
	v, err := strconv.ParseFloat(s[:i], 64)
	if err != nil || v < 0 {
		return 0, "", false
	}
	return v, s[i:], true
}

// clockTime finds "10:30", "10 30 am", "3pm", "at 14" style times among
// normalised words (":" became a space).
func clockTime(w []string) (int, int, bool) {
	for i := 0; i < len(w); i++ {
		x := w[i]
		suffix := ""
		for _, s := range []string{"am", "pm"} {
			if strings.HasSuffix(x, s) && len(x) > len(s) {
				suffix, x = s, strings.TrimSuffix(x, s)
				break
			}
		}
		h, err := strconv.Atoi(x)
		if err != nil || h < 0 || h > 23 || len(x) > 2 {
			continue
		}
		m := 0
		j := i + 1
		if j < len(w) {
			mw := w[j]
			for _, s := range []string{"am", "pm"} {
				if strings.HasSuffix(mw, s) && len(mw) == 4 && suffix == "" {
					suffix, mw = s, strings.TrimSuffix(mw, s)
				}
			}
			if v, err := strconv.Atoi(mw); err == nil && len(mw) == 2 && v < 60 {
				m = v
				j++
			}
		}
		if suffix == "" && j < len(w) && (w[j] == "am" || w[j] == "pm") {
			suffix = w[j]
		}
		// A bare number is a clock time only with a marker: "at 3",
		// a minute part, or am/pm; "3" alone might be hours ago.
		explicit := suffix != "" || m != 0 || j > i+1 || (i > 0 && (w[i-1] == "at" || w[i-1] == "around" || w[i-1] == "a" || w[i-1] == "las"))
		if !explicit {
			continue
		}
		if suffix != "" && (h > 12 || h == 0) {
			continue
		}
		if suffix == "pm" && h < 12 {
			h += 12
		}
		if suffix == "am" && h == 12 {
			h = 0
		}
		return h, m, true
	}
	return 0, 0, false
}

func fmtHours(h float64) string {
	if h < 0 {
		return "unknown time"
	}
	if h < 1 {
		return fmt.Sprintf("%d min", int(math.Round(h*60)))
	}
	return fmt.Sprintf("%d h", int(math.Round(h)))
}

func dedupe(xs []string) []string {
	seen := map[string]bool{}
	out := xs[:0]
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
