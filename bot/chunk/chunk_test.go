package chunk

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestUTF16Len(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"", 0},
		{"abc", 3},
		{"é", 1},
		{"日本", 2},
		{"😀", 2},
		{"a😀b", 4},
	} {
		if got := UTF16Len(tc.in); got != tc.want {
			t.Errorf("UTF16Len(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

// checkSplit asserts the splitter's invariants: the pieces join back to the
// input, none is empty, and for valid UTF-8 input each fits and none cuts a
// character.
func checkSplit(t *testing.T, in string, limit int, parts []string) {
	t.Helper()
	if got := strings.Join(parts, ""); got != in {
		t.Fatalf("pieces do not join back to the input (%d pieces)", len(parts))
	}
	for i, p := range parts {
		if p == "" {
			t.Fatalf("piece %d is empty", i)
		}
		if !utf8.ValidString(in) {
			continue
		}
		if n := UTF16Len(p); n > max(limit, 2) {
			t.Fatalf("piece %d has %d UTF-16 units, limit %d", i, n, limit)
		}
		if !utf8.ValidString(p) {
			t.Fatalf("piece %d cuts a character", i)
		}
	}
}

func TestSplit(t *testing.T) {
	para := strings.Repeat("a", 3000)
	emoji := strings.Repeat("😀", 3000) // 6000 UTF-16 units, no spaces
	words := strings.Repeat("word ", 1000)
	for _, tc := range []struct {
		name  string
		in    string
		limit int
		want  []string // nil: only check invariants and count
		count int
	}{
		{name: "empty", in: "", limit: 4096, want: nil, count: 0},
		{name: "short", in: "hello", limit: 4096, want: []string{"hello"}},
		{name: "exactly the limit", in: strings.Repeat("x", 4096), limit: 4096, count: 1},
		{name: "one over", in: strings.Repeat("x", 4097), limit: 4096, want: []string{strings.Repeat("x", 4096), "x"}},
		{name: "paragraph boundary preferred", in: para + "\n\n" + para, limit: 4096, want: []string{para + "\n\n", para}},
		{name: "line boundary", in: para + "\n" + para, limit: 4096, want: []string{para + "\n", para}},
		{name: "line boundary at Discord's limit", in: strings.Repeat("a", 1500) + "\n" + strings.Repeat("b", 1000), limit: 2000,
			want: []string{strings.Repeat("a", 1500) + "\n", strings.Repeat("b", 1000)}},
		{name: "word boundary", in: "aaaa bbbb cccc", limit: 10, want: []string{"aaaa bbbb ", "cccc"}},
		{name: "paragraph over line", in: "aaaaaaa\n\nbb\ncc dd", limit: 16, want: []string{"aaaaaaa\n\n", "bb\ncc dd"}},
		{name: "early boundary ignored", in: "a " + strings.Repeat("b", 20), limit: 10, want: []string{"a bbbbbbbb", "bbbbbbbbbb", "bb"}},
		{name: "emoji counted as two units", in: emoji, limit: 4096, count: 2},
		{name: "emoji at Discord's limit", in: strings.Repeat("🙂", 1500), limit: 2000,
			want: []string{strings.Repeat("🙂", 1000), strings.Repeat("🙂", 500)}},
		{name: "emoji never cut", in: "a" + strings.Repeat("😀", 5), limit: 4, want: []string{"a😀", "😀😀", "😀😀"}},
		{name: "words", in: words, limit: 4096, count: 2},
		{name: "invalid UTF-8 joins back", in: "\xff\xfe invalid", limit: 4, want: []string{"\xff\xfe ", "inva", "lid"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Split(tc.in, tc.limit)
			checkSplit(t, tc.in, tc.limit, got)
			if tc.want != nil {
				if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
					t.Fatalf("Split = %q, want %q", got, tc.want)
				}
			} else if len(got) != tc.count {
				t.Fatalf("Split gave %d pieces, want %d", len(got), tc.count)
			}
		})
	}
}

func FuzzSplit(f *testing.F) {
	f.Add("hello world", 5)
	f.Add(strings.Repeat("😀 ab\n\n", 50), 7)
	f.Add("a\nb\n\nc d", 1)
	f.Add(strings.Repeat("x", 5000), 4096)
	f.Add(strings.Repeat("word ", 500), 2000)
	f.Add("🙂🙂🙂 a\nb", 3)
	f.Add("\xff\xfe invalid", 4)
	f.Fuzz(func(t *testing.T, s string, limit int) {
		if limit > 5000 || limit < -10 {
			limit = 4096
		}
		checkSplit(t, s, limit, Split(s, limit))
	})
}
