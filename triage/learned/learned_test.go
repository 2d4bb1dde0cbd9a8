package learned_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aftercare-clinic/aftercare/triage/learned"
)

func TestEmbeddedModel(t *testing.T) {
	m := learned.Default()
	if len(m.W) != 1<<learned.Bits {
		t.Fatalf("weights: %d", len(m.W))
	}
	if m.Threshold <= 0 || m.Threshold >= 1 {
		t.Fatalf("threshold %v out of (0,1)", m.Threshold)
	}
	back, err := learned.Decode(m.Encode())
	if err != nil || back.Bias != m.Bias || back.Threshold != m.Threshold || back.W[12345] != m.W[12345] {
		t.Fatalf("round trip: %v", err)
	}
}

func TestDecodeRejects(t *testing.T) {
	good := learned.Default().Encode()
	for name, b := range map[string][]byte{
		"empty":     nil,
		"magic":     append([]byte("XXXX"), good[4:]...),
		"truncated": good[:len(good)-1],
	} {
		if _, err := learned.Decode(b); !errors.Is(err, learned.ErrFormat) {
			t.Errorf("%s: got %v, want ErrFormat", name, err)
		}
	}
}

// The model must separate clear cases it was never shown verbatim; these
// are written for this test, in wording absent from the training files.
func TestScoreSeparates(t *testing.T) {
	m := learned.Default()
	red := []string{
		"my chset is really tight and i cant get air in",
		"she went all stiff and her arms were jerking and now she wont wake up",
		"the lump by the needle spot keeps getting bigger and its hot",
		"se desmayo mi esposo y no responde",
	}
	fine := []string{
		"thank you so much, see you next tuesday",
		"can I have a coffee this afternoon?",
		"feeling relaxed and a bit sleepy, lovely session",
	}
	for _, s := range red {
		if p := m.Score(s); p < m.Threshold {
			t.Errorf("red flag scored %.2f < %.2f: %q", p, m.Threshold, s)
		}
	}
	for _, s := range fine {
		if p := m.Score(s); p >= m.Threshold {
			t.Errorf("normal message scored %.2f >= %.2f: %q", p, m.Threshold, s)
		}
	}
}

// Negation changes the features: "no chest pain" is not "chest pain".
func TestNegationScope(t *testing.T) {
	a := learned.Features(nil, "chest pain")
	b := learned.Features(nil, "no chest pain")
	c := learned.Features(nil, "no fever, chest pain")
	same := func(x, y []uint32) int {
		set := map[uint32]bool{}
		for _, v := range x {
			set[v] = true
		}
		n := 0
		for _, v := range y {
			if set[v] {
				n++
			}
		}
		return n
	}
	// Word features of "chest" and "pain" differ under negation, and the
	// comma ends the scope.
	if same(a, b) >= len(a) {
		t.Errorf("negated features identical to affirmed ones")
	}
	if same(a, c) < len(a) {
		t.Errorf("a comma did not end the negation scope")
	}
}

func TestScoreAllocatesNothing(t *testing.T) {
	m := learned.Default()
	msg := strings.Repeat("my arm feels numb and tingly since the session ", 10)
	if n := testing.AllocsPerRun(100, func() { m.Score(msg) }); n != 0 {
		t.Fatalf("Score allocates %v times", n)
	}
}

func FuzzScore(f *testing.F) {
	for _, s := range []string{"", "chest pain", "\xff\xfe", "ÁÉÍ ñ 💥", strings.Repeat("a", 70000)} {
		f.Add(s)
	}
	m := learned.Default()
	f.Fuzz(func(t *testing.T, s string) {
		p := m.Score(s)
		if !(p >= 0 && p <= 1) {
			t.Fatalf("score %v for %q", p, s)
		}
	})
}

func BenchmarkScore(b *testing.B) {
	m := learned.Default()
	for _, n := range []int{100, 500, 5000} {
		msg := strings.Repeat("i feel dizzy and my chest is tight, ", n/36+1)[:n]
		b.Run(fmt.Sprintf("%dB", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m.Score(msg)
			}
		})
	}
}

// Example shows the second opinion on one message.
func Example() {
	m := learned.Default()
	p := m.Score("i passed out in the bathroom")
	fmt.Println(p >= m.Threshold)
	// Output: true
}
