package engine

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// faqByScan is the FAQ lookup as it was before the automaton: one search
// through the message per phrase. The matcher must agree with it.
func faqByScan(p *Protocol, n string) int {
	best, bestLen := -1, 0
	for i := range p.FAQ {
		if l := normsScore(n, p.faqNorm[i]); l > bestLen {
			best, bestLen = i, l
		}
	}
	return best
}

// negatedByFields is negatedBefore as it was, splitting into words.
func negatedByFields(n string, i int) bool {
	words := strings.Fields(n[:i])
	for k := len(words) - 1; k >= 0 && k >= len(words)-2; k-- {
		switch words[k] {
		case "no", "not", "never", "dont", "isnt", "arent", "without", "nor", "sin":
			return true
		}
	}
	return false
}

// phraseProtocols are the shipped protocols, indexed.
func phraseProtocols(t testing.TB) []*Protocol {
	t.Helper()
	return DefaultProtocols()
}

// messages builds texts from the protocol's own phrases: each alone, after
// a negation, two together, and mixed with other words, so every phrase,
// every overlap and every negation path is exercised.
func messages(p *Protocol, rng *rand.Rand, n int) []string {
	var words []string
	for _, f := range p.FAQ {
		words = append(words, f.Keywords...)
	}
	words = append(words, p.Readiness.Triggers...)
	words = append(words, p.Intents["person"]...)
	extra := []string{"no", "not", "never", "don't", "i", "my", "can", "today", "?", "really", "without", "sin", "café", "ok"}
	out := append([]string{"", " ", "?", "coffee", "no coffee", "not really coffee at all"}, words...)
	for _, w := range words {
		out = append(out, "no "+w, "i do not "+w, "never mind, "+w+"?")
	}
	for range n {
		var b []string
		for range 1 + rng.IntN(6) {
			if rng.IntN(3) == 0 {
				b = append(b, extra[rng.IntN(len(extra))])
			} else {
				b = append(b, words[rng.IntN(len(words))])
			}
		}
		out = append(out, strings.Join(b, " "))
	}
	return out
}

func TestPhraseMatcherAgreesWithScanning(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, p := range phraseProtocols(t) {
		for _, m := range messages(p, rng, 3000) {
			n := norm(m)
			if got, want := p.faqMatch.best(n); got != faqByScan(p, n) {
				t.Errorf("%s: %q: FAQ %d (score %d), scanning finds %d", p.lang(), m, got, want, faqByScan(p, n))
			}
			_, got := p.triggerMatch.best(n)
			if want := normsScore(n, p.triggersNorm); got != want {
				t.Errorf("%s: %q: trigger score %d, scanning finds %d", p.lang(), m, got, want)
			}
			person := false
			for _, ph := range p.Intents["person"] {
				person = person || (strings.TrimSpace(p.phrase(ph)) != "" && normScore(n, p.phrase(ph)) > 0)
			}
			if _, l := p.personMatch.best(n); (l > 0) != person {
				t.Errorf("%s: %q: person phrase found %v, scanning says %v", p.lang(), m, l > 0, person)
			}
			for i := range len(n) + 1 {
				if negatedBefore(n, i) != negatedByFields(n, i) {
					t.Fatalf("%q at %d: negatedBefore %v, by fields %v", n, i, negatedBefore(n, i), negatedByFields(n, i))
				}
			}
		}
	}
}

func FuzzPhraseMatcher(f *testing.F) {
	f.Add("can I have coffee? no coffee, not alcohol")
	f.Add("¿puedo tomar café? sin alcohol")
	ps := DefaultProtocols()
	f.Fuzz(func(t *testing.T, s string) {
		n := norm(s)
		for _, p := range ps {
			if got, want := p.faqMatch.best(n); got != faqByScan(p, n) {
				t.Fatalf("%s: %q: FAQ %d (score %d), scanning finds %d", p.lang(), s, got, want, faqByScan(p, n))
			}
		}
	})
}

func BenchmarkFAQ(b *testing.B) {
	p := phraseProtocols(b)[0]
	n := norm("Should I use heat or ice on my neck tonight, or is a hot shower better?")
	b.Run("automaton", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p.faqMatch.best(n)
		}
	})
	b.Run("scan", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			faqByScan(p, n)
		}
	})
}
