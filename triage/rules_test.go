package triage

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aftercare-clinic/aftercare/engine"
)

func TestRuleErrorsNameTheKey(t *testing.T) {
	sign := func(extra string) string {
		return `{"language": "en", "signs": [{"id": "x1", "sign": "x", "level": "watch", "terms": ["zorblat"]}, {"id": "x2", "sign": "x", ` + extra + `}]}`
	}
	cases := []struct {
		name, data string
		want       []string
	}{
		{"bad level", sign(`"level": "urgnt", "terms": ["a b"]`),
			[]string{`clinic.json: signs[1].level: unknown level "urgnt" (want none, watch, urgent or emergency)`}},
		{"missing level", sign(`"terms": ["a b"]`), []string{"clinic.json: signs[1].level: missing"}},
		{"missing terms", sign(`"level": "watch"`), []string{"clinic.json: signs[1].terms: missing"}},
		{"missing id", `{"language": "en", "signs": [{"sign": "x", "level": "watch", "terms": ["q"]}]}`, []string{"signs[0].id: missing"}},
		{"unknown field", sign(`"level": "watch", "terms": ["a"], "colour": "red"`), []string{"clinic.json: signs[1].colour: unknown field"}},
		{"unknown top-level field", `{"language": "en", "sings": []}`, []string{"clinic.json: sings: unknown field"}},
		{"wrong type", `{"language": "en", "signs": [{"id": "a", "sign": "a", "level": "none", "terms": "dizzy"}]}`, []string{"signs[0].terms: want an array"}},
		{"missing language", `{"signs": []}`, []string{"clinic.json: language: missing"}},
		{"bad modifier key", sign(`"level": "watch", "terms": ["a"], "levels": {"sever": "urgent"}`), []string{"signs[1].levels.sever: unknown modifier"}},
		{"bad modifier level", sign(`"level": "watch", "terms": ["a"], "levels": {"severe": "high"}`), []string{`signs[1].levels.severe: unknown level "high"`}},
		{"unknown modifier list", `{"language": "en", "modifiers": {"tiny": ["a"]}}`, []string{"modifiers.tiny: unknown modifier"}},
		{"bad term", sign(`"level": "watch", "terms": ["... dizzy"]`), []string{"signs[1].terms[0]:", "cannot start with ..."}},
		{"punctuation in term", sign(`"level": "watch", "terms": ["hot, red"]`), []string{"signs[1].terms[0]:", "punctuation"}},
		{"unknown question", sign(`"level": "watch", "terms": ["a"], "ask": "nope"`), []string{`signs[1].ask: unknown question "nope"`}},
		{"bad choice level", `{"language": "en", "questions": [{"id": "q", "text": "?", "choices": [{"id": "a", "label": "A", "level": "none"}, {"id": "b", "label": "B", "level": "meh"}]}]}`,
			[]string{`questions[0].choices[1].level: unknown level "meh"`}},
		{"one choice", `{"language": "en", "questions": [{"id": "q", "text": "?", "choices": [{"id": "a", "label": "A", "level": "none"}]}]}`,
			[]string{"questions[0].choices: want 2 or 3 choices"}},
		{"unknown combo sign", `{"language": "en", "combos": [{"signs": ["dizziness", "hiccups"], "level": "urgent"}]}`,
			[]string{`combos[0].signs[1]: unknown sign "hiccups"`}},
		{"score without #", `{"language": "en", "scores": {"pain": {"patterns": ["out of 10"]}}}`, []string{"scores.pain.patterns[0]"}},
		{"unknown band use", `{"language": "en", "scores": {"pain": {"patterns": ["# / 10"], "bands": [{"min": 1, "max": 10, "use": "nosuch"}]}}}`,
			[]string{`scores.pain.bands[0].use: unknown sign id "nosuch"`}},
		{"short fuzzy word", `{"language": "en", "fuzzy": {"words": ["dizy"]}}`, []string{"fuzzy.words[0]"}},
		{"not json", `{"language": "en",`, []string{"clinic.json: not valid JSON"}},
		{"duplicate id", `{"language": "en", "signs": [{"id": "a", "sign": "a", "level": "none", "terms": ["q"]}, {"id": "a", "sign": "a", "level": "none", "terms": ["r"]}]}`,
			[]string{`signs[1].id: duplicate id "a"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(File{Name: "clinic.json", Data: []byte(tc.data)})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestClinicRulesExtend(t *testing.T) {
	c, err := Load(File{Name: "clinic.json", Data: []byte(`{
		"language": "en",
		"signs": [
			{"id": "bruising", "sign": "bruising", "level": "watch", "terms": ["bruise", "bruised"]},
			{"id": "hiccups", "sign": "hiccups", "level": "watch", "terms": ["hiccups", "hiccup*"]},
			{"id": "twitching", "disabled": true}
		],
		"context": {"negation": ["nary a"]}
	}`)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		text string
		want engine.Level
	}{
		{"small bruise", engine.Watch},      // replaced by id: now watch at base, no mild override
		{"hiccuping all day", engine.Watch}, // new sign
		{"nary a hiccup", engine.None},      // new negation
		{"I fainted", engine.Emergency},     // defaults still there
		{"me desmayé", engine.Emergency},    // other languages untouched
	} {
		if got := c.Triage(tc.text, -1).Level; got != tc.want {
			t.Errorf("%q: got %s, want %s", tc.text, got, tc.want)
		}
	}
	if f := c.Triage("my leg twitched", -1); len(f.Signs) != 0 {
		t.Errorf("disabled sign still found: %v", f.Signs)
	}
}

func TestClinicRulesReplace(t *testing.T) {
	c, err := Load(File{Name: "only.json", Data: []byte(`{
		"language": "en", "replace": true,
		"signs": [{"id": "fainting", "sign": "fainting", "level": "emergency", "terms": ["fainted"]}],
		"context": {"negation": ["no", "never"]}
	}`)})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Triage("I fainted", -1).Level; got != engine.Emergency {
		t.Errorf("fainted: got %s", got)
	}
	if got := c.Triage("never fainted", -1).Level; got != engine.None {
		t.Errorf("never fainted: got %s", got)
	}
	if got := c.Triage("I can't breathe", -1).Level; got != engine.None {
		t.Errorf("replaced rules still know breathing: %s", got)
	}
}

func TestLoadFiles(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "clinic.json")
	if err := os.WriteFile(p, []byte(`{"language": "en", "signs": [{"id": "hiccups", "sign": "hiccups", "level": "watch", "terms": ["hiccups"]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadFiles(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Triage("hiccups", -1).Level; got != engine.Watch {
		t.Errorf("got %s", got)
	}
	if _, err := LoadFiles(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("missing file: no error")
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"language": "en", "signs": [{"id": "a", "sign": "a", "level": "urgnt", "terms": ["q"]}]}`), 0o600)
	if _, err := LoadFiles(bad); err == nil || !strings.Contains(err.Error(), bad+": signs[0].level") {
		t.Errorf("error %v should name %s and the key", err, bad)
	}
}

func TestEmbeddedFilesAreStrict(t *testing.T) {
	// Each embedded file must load on its own terms too (no hidden dependency
	// on another file except shared sign names).
	for _, f := range defaultFiles() {
		if _, err := parseFile(f); err != nil {
			t.Errorf("%s: %v", f.Name, err)
		}
	}
}
