package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
)

// englishOnly are words no Spanish message of the bot contains.
var englishOnly = map[string]bool{
	"the": true, "and": true, "you": true, "your": true, "please": true, "today": true, "tomorrow": true,
	"check": true, "in": true, "session": true, "clinic": true, "team": true, "call": true, "now": true,
	"if": true, "it": true, "is": true, "with": true, "for": true, "this": true, "that": true, "what": true,
	"how": true, "feel": true, "thanks": true, "sorry": true, "hi": true, "help": true, "stop": true,
	"start": true, "yes": true, "i": true, "my": true, "of": true, "to": true, "at": true, "or": true,
	"can": true, "will": true, "not": true, "ll": true,
}

// TestSpanishGoldensHaveNoEnglish reads every Spanish golden transcript
// (es_*.golden) and fails on an English word in a message or button to the
// patient. Staff alerts stay in the clinic's language and are skipped; the
// clinic's configured name is not the bot's wording and is left out.
func TestSpanishGoldensHaveNoEnglish(t *testing.T) {
	goldens, _ := filepath.Glob("testdata/replay/es_*.golden")
	if len(goldens) < 7 {
		t.Fatalf("found %d Spanish golden transcripts, want one per journey (intake, readiness, faq, checkins, escalation, stop_start, safety_net)", len(goldens))
	}
	name := DefaultConfig().Clinic.Name
	for _, g := range goldens {
		b, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		patient := 0
		for _, r := range replayLines(t, string(b)) {
			if r.To == "staff" {
				continue
			}
			patient++
			for _, tx := range append([]string{r.Text}, r.Choices...) {
				tx = strings.ReplaceAll(tx, name, "")
				for _, w := range strings.FieldsFunc(strings.ToLower(tx), func(r rune) bool { return !unicode.IsLetter(r) }) {
					if englishOnly[w] {
						t.Errorf("%s at %s: English %q in %q", filepath.Base(g), r.At, w, tx)
						break
					}
				}
			}
		}
		if patient == 0 {
			t.Errorf("%s: no message to the patient", g)
		}
	}
}
