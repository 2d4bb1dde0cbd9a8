package triage

import (
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/aftercare-clinic/aftercare/engine"
)

func TestDefaultRulesLoad(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatalf("embedded rules: %v", err)
	}
	if len(c.rs.entries) == 0 || len(c.rs.patterns) == 0 {
		t.Fatal("embedded rules compiled to nothing")
	}
	if !contains(c.rs.langs, "en") || !contains(c.rs.langs, "es") {
		t.Errorf("languages %v, want en and es", c.rs.langs)
	}
	if Default() != Default() {
		t.Error("Default should build once and share")
	}
}

func TestAnyInput(t *testing.T) {
	c := Default()
	long := strings.Repeat("my shoulder is a little sore today. ", 600) // ~21,000 chars
	inputs := []string{
		"", " ", "\x00\x01\x02", "\xff\xfe\xfd", "....,,,,!!!!", "/ / / 10", "# ... | *",
		strings.Repeat("a", 100000), strings.Repeat("no ", 20000), strings.Repeat("🤮", 5000),
		strings.Repeat("9/10 ", 3000), "dizzy\u200d\ufe0f\u0301", long,
	}
	for _, in := range inputs {
		f := c.Triage(in, -1)
		if f.Level < engine.None || f.Level > engine.Emergency {
			t.Errorf("level %d out of range", f.Level)
		}
		if slicesContains(f.Signs, "triage_error") {
			t.Errorf("internal error on input of %d bytes", len(in))
		}
	}
	// Long messages are still read to the end.
	if f := c.Triage(long+" and now I can't breathe", -1); f.Level != engine.Emergency {
		t.Errorf("red flag at the end of a long message: got %s", f.Level)
	}
	if f := c.Triage(strings.Repeat("all fine here. ", 5000)+"I fainted", -1); f.Level != engine.Emergency {
		t.Errorf("red flag at the end of a 75 KB message: got %s", f.Level)
	}
	if f := c.Triage("I fainted. "+strings.Repeat("all fine here. ", 5000), -1); f.Level != engine.Emergency {
		t.Errorf("red flag at the start of a 75 KB message: got %s", f.Level)
	}
}

// worstCases are inputs built to defeat the rules' shortcuts: long runs of
// sign words with gaps, endless negated lists, questions, scores, subjects,
// typos and emoji.
var worstCases = map[string]string{
	"gaps":     strings.Repeat("heart chest is ", 8000),
	"lists":    strings.Repeat("no dizziness, ", 5000),
	"question": strings.Repeat("is it normal ", 5000),
	"scores":   strings.Repeat("9/10 ", 10000),
	"subjects": strings.Repeat("he she my son ", 5000),
	"typos":    strings.Repeat("palpitatoins dizzzzy ", 3000),
	"emoji":    strings.Repeat("🤮😵", 8000),
}

// TestWorstCaseInputs checks that the worst-case inputs end with a level,
// the same one each time. Their cost is measured by BenchmarkWorstCase
// (a timed unit test would fail on a busy machine, not on slow code).
func TestWorstCaseInputs(t *testing.T) {
	c := Default()
	for name, in := range worstCases {
		a, b := c.Triage(in, 30), c.Triage(in, 30)
		if a.Level < engine.None || a.Level > engine.Emergency || a.Level != b.Level {
			t.Errorf("%s: levels %v then %v", name, a.Level, b.Level)
		}
	}
}

// BenchmarkWorstCase measures the inputs of TestWorstCaseInputs; each
// should stay well under a second (`go test ./triage -run XXX -bench WorstCase`).
func BenchmarkWorstCase(b *testing.B) {
	c := Default()
	for name, in := range worstCases {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				c.Triage(in, 30)
			}
		})
	}
}

func slicesContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestConcurrent(t *testing.T) {
	c := Default()
	msgs := []string{"I fainted", "no dizziness", "pain is 9/10", "still sore", "estoy mareado", "my son is pale and vomiting"}
	want := make([]engine.Finding, len(msgs))
	for i, m := range msgs {
		want[i] = c.Triage(m, 50)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for k := 0; k < 300; k++ {
				i := (g + k) % len(msgs)
				if got := c.Triage(msgs[i], 50); got.Level != want[i].Level || got.Subject != want[i].Subject {
					t.Errorf("concurrent %q: got %s, want %s", msgs[i], got.Level, want[i].Level)
					return
				}
			}
		}(g)
	}
	wg.Wait()
}

// BenchmarkTriage classifies every shared and dev case per iteration and
// reports the cost of one message.
func BenchmarkTriage(b *testing.B) {
	c := Default()
	var msgs []labelled
	msgs = append(msgs, readTSV(b, sharedCases)...)
	msgs = append(msgs, readTSV(b, "testdata/dev.tsv")...)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m := msgs[i%len(msgs)]
		c.Triage(m.text, m.hours)
	}
}

// BenchmarkTriageLong measures a 20,000-character message.
func BenchmarkTriageLong(b *testing.B) {
	c := Default()
	long := strings.Repeat("my shoulder is a little sore today but no dizziness. ", 380)
	b.ReportAllocs()
	b.SetBytes(int64(len(long)))
	for i := 0; i < b.N; i++ {
		c.Triage(long, 30)
	}
}

func FuzzTriage(f *testing.F) {
	for _, s := range []string{
		"I fainted", "no dizziness", "pain is 9/10", "what if I get dizzy?", "my son is pale and vomiting",
		"no fever, chills or pus", "heart ... racing", "dizzzzyyy 🤮", "me desmayé", "\xff\xfe", "# / 10 out of 10",
		"is it normal to have chest pain? because I just did", "day three and still sore",
	} {
		f.Add(s, 30.0)
	}
	c := Default()
	f.Fuzz(func(t *testing.T, s string, hours float64) {
		got := c.Triage(s, hours)
		if got.Level < engine.None || got.Level > engine.Emergency {
			t.Fatalf("level %d out of range", got.Level)
		}
		if got.Ask != nil {
			if got.Level == engine.Emergency {
				t.Fatal("Ask set on an emergency")
			}
			if len(got.Ask.Choices) < 2 {
				t.Fatal("Ask with fewer than two choices")
			}
		}
		for _, sg := range got.Signs {
			if sg == "" || sg == "triage_error" {
				t.Fatalf("bad sign %q", sg)
			}
		}
		if got.Subject != "" && got.Subject != "child" && got.Subject != "other" {
			t.Fatalf("bad subject %q", got.Subject)
		}
		if !utf8.ValidString(got.Subject) {
			t.Fatal("invalid subject")
		}
		// Appending a clear emergency to anything must give an emergency.
		if e := c.Triage(s+"\nI can't breathe", hours); e.Level != engine.Emergency {
			t.Fatalf("appended emergency read as %s", e.Level)
		}
	})
}
