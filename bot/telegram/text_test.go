package telegram

import (
	"strings"
	"testing"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/staffgate"
)

func TestBuildKeyboard(t *testing.T) {
	long := strings.Repeat("x", 65)
	for _, tc := range []struct {
		name    string
		in      []engine.Choice
		rows    [][]string // labels per row
		data    [][]string // callback data per row; nil: same as labels
		dropped int
	}{
		{name: "none", in: nil, rows: nil},
		{name: "yes no share a row",
			in:   []engine.Choice{{ID: "yes", Label: "Yes"}, {ID: "no", Label: "No"}},
			rows: [][]string{{"Yes", "No"}}, data: [][]string{{"yes", "no"}}},
		{name: "at most four per row",
			in:   []engine.Choice{{ID: "0", Label: "0"}, {ID: "1", Label: "1"}, {ID: "2", Label: "2"}, {ID: "3", Label: "3"}, {ID: "4", Label: "4"}},
			rows: [][]string{{"0", "1", "2", "3"}, {"4"}}},
		{name: "long labels get their own row",
			in: []engine.Choice{
				{ID: "a", Label: "I feel dizzy or faint right now"},
				{ID: "b", Label: "Just a bit sore where the needles were"},
			},
			rows: [][]string{{"I feel dizzy or faint right now"}, {"Just a bit sore where the needles were"}},
			data: [][]string{{"a"}, {"b"}}},
		{name: "empty label falls back to the ID",
			in:   []engine.Choice{{ID: "ok", Label: "  "}},
			rows: [][]string{{"ok"}}},
		{name: "invalid IDs are dropped",
			in:   []engine.Choice{{ID: "", Label: "Empty"}, {ID: long, Label: "Long"}, {ID: "\xff", Label: "Bad"}, {ID: "fine", Label: "Fine"}},
			rows: [][]string{{"Fine"}}, data: [][]string{{"fine"}}, dropped: 3},
		{name: "64-byte ID is fine",
			in:   []engine.Choice{{ID: long[:64], Label: "L"}},
			rows: [][]string{{"L"}}, data: [][]string{{long[:64]}}},
		{name: "markdown characters kept as typed",
			in:   []engine.Choice{{ID: "x", Label: "_x*"}},
			rows: [][]string{{"_x*"}}, data: [][]string{{"x"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kb, dropped := buildKeyboard(tc.in)
			if len(dropped) != tc.dropped {
				t.Fatalf("dropped %d, want %d", len(dropped), tc.dropped)
			}
			if tc.rows == nil {
				if kb != nil {
					t.Fatalf("want no keyboard, got %+v", kb)
				}
				return
			}
			if kb == nil || len(kb.InlineKeyboard) != len(tc.rows) {
				t.Fatalf("keyboard = %+v, want rows %v", kb, tc.rows)
			}
			data := tc.data
			if data == nil {
				data = tc.rows
			}
			for i, row := range kb.InlineKeyboard {
				if len(row) != len(tc.rows[i]) {
					t.Fatalf("row %d has %d buttons, want %v", i, len(row), tc.rows[i])
				}
				for j, b := range row {
					if b.Text != tc.rows[i][j] || b.CallbackData == nil || *b.CallbackData != data[i][j] {
						t.Fatalf("button %d,%d = %q/%v, want %q/%q", i, j, b.Text, b.CallbackData, tc.rows[i][j], data[i][j])
					}
				}
			}
		})
	}
}

func TestCommand(t *testing.T) {
	for _, tc := range []struct {
		in         string
		name, args string
		ok         bool
	}{
		{"hello", "", "", false},
		{"", "", "", false},
		{"/", "", "", false},
		{"/start", "start", "", true},
		{"/start abc_DEF-123", "start", "abc_DEF-123", true},
		{"/START@AftercareBot abc", "start", "abc", true},
		{"/ack 12", "ack", "12", true},
		{"/ack\n12", "ack", "12", true},
		{"/@bot", "", "", false},
		{"/stop   please", "stop", "please", true},
	} {
		name, args, ok := command(tc.in)
		if name != tc.name || args != tc.args || ok != tc.ok {
			t.Errorf("command(%q) = %q, %q, %v; want %q, %q, %v", tc.in, name, args, ok, tc.name, tc.args, tc.ok)
		}
	}
}

func TestNormalizeCommandText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/start abc", "/start abc"},
		{"/start@AftercareBot abc", "/start abc"},
		{"/start@AftercareBot", "/start"},
		{"/Start abc", "/Start abc"}, // no @: untouched, the engine decides
		{"/ack@AftercareBot 1", "/ack@AftercareBot 1"},
		{"hello @bot", "hello @bot"},
	} {
		if got := normalizeCommandText(tc.in); got != tc.want {
			t.Errorf("normalizeCommandText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzCommandParsing checks the parsing done on deep links and commands:
// it never panics, a /start payload is passed on byte for byte, and
// anything that is not a command is left alone.
func FuzzCommandParsing(f *testing.F) {
	f.Add("/start abc_DEF-123")
	f.Add("/start@Bot x y")
	f.Add("/ack 1")
	f.Add("plain text")
	f.Add("/\n")
	f.Fuzz(func(t *testing.T, s string) {
		name, args, ok := command(s)
		if !ok && (name != "" || args != "") {
			t.Fatalf("not a command but name=%q args=%q", name, args)
		}
		if ok && !strings.HasPrefix(s, "/") {
			t.Fatalf("%q parsed as a command", s)
		}
		out := normalizeCommandText(s)
		if !strings.HasPrefix(s, "/") && out != s {
			t.Fatalf("non-command %q rewritten to %q", s, out)
		}
		if strings.HasPrefix(s, "/start ") && out != s {
			t.Fatalf("deep link %q rewritten to %q", s, out)
		}
	})
}

// FuzzCallbackData checks that any callback data comes back as the
// Inbound's Choice unchanged, with the label found in the keyboard.
func FuzzCallbackData(f *testing.F) {
	f.Add("yes", "Yes")
	f.Add("", "")
	f.Add("ack:12", "_x*")
	f.Fuzz(func(t *testing.T, data, label string) {
		kb, _ := buildKeyboard([]engine.Choice{{ID: data, Label: label}, {ID: "other", Label: "Other"}})
		u := callbackUpdate(7, 42, data)
		u.CallbackQuery.Message.ReplyMarkup = kb
		r := translate(u, staffgate.New(staffgate.Rules{}))
		if r.kind != routePatient {
			t.Fatalf("kind = %v", r.kind)
		}
		if r.inbound.Choice != data {
			t.Fatalf("Choice = %q, want %q", r.inbound.Choice, data)
		}
		if validCallbackData(data) && data != "other" {
			want := strings.TrimSpace(cleanText(label))
			if want == "" {
				want = data
			}
			if r.inbound.Text != want {
				t.Fatalf("Text = %q, want label %q", r.inbound.Text, want)
			}
		}
	})
}
