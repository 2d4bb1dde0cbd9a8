package staffgate_test

import (
	"sync"
	"testing"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/staffgate"
)

func TestGateStaff(t *testing.T) {
	g := staffgate.New(staffgate.Rules{
		Chats: []engine.PatientID{"telegram:-1001"},
		Users: []string{"telegram:42", "discord:7"},
		Roles: []string{"discord:nurses"},
	})
	tests := []struct {
		name string
		who  staffgate.Who
		want bool
	}{
		{"anyone in the staff chat", staffgate.Who{User: "telegram:5", Chat: "telegram:-1001"}, true},
		{"a staff user in private", staffgate.Who{User: "telegram:42", Chat: "telegram:42"}, true},
		{"a patient in private", staffgate.Who{User: "telegram:5", Chat: "telegram:5"}, false},
		{"a staff user's ID on another platform", staffgate.Who{User: "discord:42", Chat: "discord:1"}, false},
		{"a staff role holder", staffgate.Who{User: "discord:9", Chat: "discord:staffch", Roles: []string{"discord:x", "discord:nurses"}}, true},
		{"other roles only", staffgate.Who{User: "discord:9", Chat: "discord:staffch", Roles: []string{"discord:x"}}, false},
		{"a staff user by ID", staffgate.Who{User: "discord:7"}, true},
		{"nobody", staffgate.Who{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := g.Staff(tc.who); got != tc.want {
				t.Errorf("Staff(%+v) = %v, want %v", tc.who, got, tc.want)
			}
		})
	}
	var nilGate *staffgate.Gate
	if nilGate.Staff(staffgate.Who{User: "telegram:42"}) || (&staffgate.Gate{}).Staff(staffgate.Who{User: "telegram:42"}) {
		t.Error("a nil or zero Gate let someone through")
	}
}

// TestGateAddChatWhileAsked: a staff group's new ID (a Telegram supergroup
// migration) counts as staff while other goroutines ask, and the old one
// still does.
func TestGateAddChatWhileAsked(t *testing.T) {
	g := staffgate.New(staffgate.Rules{Chats: []engine.PatientID{"telegram:-1"}})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				g.Staff(staffgate.Who{Chat: "telegram:-100"})
			}
		}()
	}
	g.AddChat("telegram:-100")
	wg.Wait()
	if !g.Staff(staffgate.Who{Chat: "telegram:-100"}) || !g.Staff(staffgate.Who{Chat: "telegram:-1"}) || !g.StaffChat("telegram:-1") {
		t.Fatal("after AddChat, the new and the old staff chat must both count")
	}
	if g.StaffChat("telegram:-2") {
		t.Fatal("StaffChat of an unknown chat")
	}
}

func TestIsCommand(t *testing.T) {
	tests := []struct {
		text string
		want bool
	}{
		{"/ack 12", true},
		{"/ACK@ClinicBot 12", true},
		{"/acknowledge 3", true},
		{"/login", true},
		{"/resume telegram:1", true},
		{"/start TOKEN", false}, // a patient's
		{"/help", false},
		{"ack 12", false}, // no slash: patient text
		{" /open", false}, // as typed: not a command
		{"/", false},
		{"", false},
	}
	for _, tc := range tests {
		if got := staffgate.IsCommand(tc.text); got != tc.want {
			t.Errorf("IsCommand(%q) = %v, want %v", tc.text, got, tc.want)
		}
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		text, name string
		args       int
		ok         bool
	}{
		{"/resolve 4 called back, fine", "resolve", 4, true},
		{"ack 12", "ack", 1, true}, // a pressed button, read as words
		{"/Acknowledge@ClinicBot 12", "ack", 1, true},
		{"/frobnicate", "", 0, false},
		{"", "", 0, false},
	}
	for _, tc := range tests {
		c, args, ok := staffgate.Parse(tc.text)
		if c.Name != tc.name || len(args) != tc.args || ok != tc.ok {
			t.Errorf("Parse(%q) = %q, %q, %v; want %q, %d args, %v", tc.text, c.Name, args, ok, tc.name, tc.args, tc.ok)
		}
	}
}

// TestHelp pins the help text staff see: it is built from Commands, and
// lists every command by name.
func TestHelp(t *testing.T) {
	want := `Staff commands:
/open - open escalations
/ack N - acknowledge escalation N (or press its button)
/resolve N note - close escalation N
/today - patients in follow-up and their check-ins
/patient ID - one patient's timeline
/pause ID, /resume ID - stop or restart a patient's check-ins
/visit TREATMENT AREA [acute] [child] [ago=2h] [tz=Zone] - record a visit, get an invite
/audit [N] - recent audit lines
/login - a one-time sign-in link to the staff desk`
	if got := staffgate.Help(); got != want {
		t.Fatalf("Help() =\n%s\nwant\n%s", got, want)
	}
}

func TestButtonCommand(t *testing.T) {
	tests := []struct {
		payload, want string
		ok            bool
	}{
		{staffgate.Button("ack", "12"), "/ack 12", true},
		{"resolve:4", "/resolve 4", true},
		{"yes", "", false},         // a patient's button
		{"feel:better", "", false}, // a patient's button with a colon
	}
	for _, tc := range tests {
		got, ok := staffgate.ButtonCommand(tc.payload)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ButtonCommand(%q) = %q, %v; want %q, %v", tc.payload, got, ok, tc.want, tc.ok)
		}
	}
}

// FuzzParse: staff and patient text are outside input. Whatever arrives,
// the readers agree: a text IsCommand accepts parses as a known command,
// and a staff button's command parses as one too.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"/ack 12", "/ACK@Bot 1", "ack:3", "/start x", "/", "", " /open", "/visit dry_needling neck ago=2h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, _, ok := staffgate.Parse(s)
		if staffgate.IsCommand(s) && !ok {
			t.Fatalf("IsCommand(%q) but Parse does not know it", s)
		}
		if ok {
			if _, known := staffgate.Lookup(c.Name); !known {
				t.Fatalf("Parse(%q) returned unknown command %q", s, c.Name)
			}
		}
		if cmd, ok := staffgate.ButtonCommand(s); ok {
			if _, _, known := staffgate.Parse(cmd); !known {
				t.Fatalf("ButtonCommand(%q) = %q, which Parse does not know", s, cmd)
			}
		}
	})
}
