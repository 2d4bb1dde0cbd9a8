package console_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/bot/console"
	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"
)

type recorder struct {
	mu  sync.Mutex
	got []service.Inbound
}

func (r *recorder) Receive(_ context.Context, in service.Inbound) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, in)
	return nil
}

func TestConsoleTranslatesBothWays(t *testing.T) {
	var out bytes.Buffer
	rec := &recorder{}
	var skipped time.Duration
	c := console.New(strings.NewReader("Energized\nI feel a bit sore\n/skip 24h\n/skip nonsense\n/quit\nnever read\n"), &out, rec, func(d time.Duration) { skipped += d })
	// The bot offered buttons before the patient typed.
	c.Send(context.Background(), engine.Outbound{To: console.Patient, Kind: engine.KindReply, Text: "How is your energy?\nPick one.",
		Choices: []engine.Choice{{ID: "energized", Label: "Energized"}, {ID: "tired", Label: "Tired"}}})
	c.Send(context.Background(), engine.Outbound{To: engine.StaffAddress, Channel: console.Staff, Kind: engine.KindAlert, Level: engine.Urgent, Text: "[URGENT] console:local"})
	if err := c.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(rec.got) != 2 {
		t.Fatalf("inbound %+v", rec.got)
	}
	if rec.got[0].Choice != "energized" || rec.got[0].Text != "Energized" || rec.got[0].Patient != console.Patient {
		t.Fatalf("typing a label presses the button: %+v", rec.got[0])
	}
	if rec.got[1].Choice != "" || rec.got[1].Text != "I feel a bit sore" {
		t.Fatalf("free text: %+v", rec.got[1])
	}
	if skipped != 24*time.Hour {
		t.Fatalf("skipped %v", skipped)
	}
	o := out.String()
	for _, want := range []string{"bot> How is your energy?\n     Pick one.", "[Energized] [Tired]", "[STAFF ALERT URGENT] console:local", "usage: /skip 24h"} {
		if !strings.Contains(o, want) {
			t.Errorf("output lacks %q:\n%s", want, o)
		}
	}
}

type staffRecorder struct {
	recorder
	staff []service.StaffInbound
}

func (r *staffRecorder) ReceiveStaff(_ context.Context, in service.StaffInbound) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.staff = append(r.staff, in)
	return nil
}

// TestConsoleStaffSide: the console stands in for staff, so a demo's alert
// can be listed and acknowledged; the alert's level is shown once.
func TestConsoleStaffSide(t *testing.T) {
	var out bytes.Buffer
	rec := &staffRecorder{}
	c := console.New(strings.NewReader("/open\n/ack 3\n/ACK 4\n/resolve 3 called back\n/audit 5\n/help\nI still feel dizzy\n"), &out, rec, nil)
	ctx := context.Background()
	c.Send(ctx, engine.Outbound{To: engine.StaffAddress, Channel: console.Staff, Kind: engine.KindAlert, Level: engine.Emergency,
		Text: "[EMERGENCY] console:local after dry needling: fainting", Choices: []engine.Choice{{ID: "ack:3", Label: "Acknowledge"}}})
	c.Send(ctx, engine.Outbound{To: engine.StaffAddress, Channel: console.Staff, Kind: engine.KindAlert, Level: engine.Emergency,
		Text: "[EMERGENCY, NOT ACKNOWLEDGED for 10 min] #3 console:local"})
	c.Send(ctx, engine.Outbound{To: engine.StaffAddress, Channel: console.Staff, Kind: engine.KindNotice, Text: "Escalation #3 acknowledged."})
	if err := c.Run(ctx); err != nil {
		t.Fatal(err)
	}
	var cmds []string
	for _, in := range rec.staff {
		if in.Channel != console.Staff || in.Staff == "" {
			t.Errorf("staff inbound without channel or staff: %+v", in)
		}
		cmds = append(cmds, in.Text)
	}
	if got := strings.Join(cmds, "|"); got != "/open|/ack 3|/ACK 4|/resolve 3 called back|/audit 5" {
		t.Errorf("staff commands %q", got)
	}
	if len(rec.got) != 2 || rec.got[0].Text != "/help" || rec.got[1].Text != "I still feel dizzy" {
		t.Errorf("patient inbound %+v", rec.got)
	}
	o := out.String()
	for _, want := range []string{
		"[STAFF ALERT EMERGENCY] console:local after dry needling: fainting\n  (staff: /ack 3 to acknowledge",
		"[STAFF ALERT EMERGENCY, NOT ACKNOWLEDGED for 10 min] #3 console:local",
		"[STAFF] Escalation #3 acknowledged.",
		"/ack N acknowledges",
	} {
		if !strings.Contains(o, want) {
			t.Errorf("output lacks %q:\n%s", want, o)
		}
	}
	if strings.Contains(o, "[EMERGENCY]") {
		t.Errorf("level shown twice:\n%s", o)
	}
}

// TestConsoleInvite checks that a typed "/start CODE" (what the clinic's
// printout tells a console patient to type) presents the code as an
// invite, and that nothing else does: a "/start" followed by anything that
// is not a code is the patient's text, and a pressed button never is one.
func TestConsoleInvite(t *testing.T) {
	tests := []struct {
		line, invite string
	}{
		{"/start abc123", "abc123"},
		{"  /start  Ab_9-z ", "Ab_9-z"},
		{"/start", ""},
		{"/start I fainted", ""},
		{"/start ab$c", ""},
		{"hello", ""},
		{"/start yes", ""}, // the label of the button on offer: pressed, not typed
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			rec := &recorder{}
			c := console.New(strings.NewReader(tt.line+"\n"), &bytes.Buffer{}, rec, nil)
			c.Send(context.Background(), engine.Outbound{To: console.Patient, Kind: engine.KindReply, Text: "Go on?",
				Choices: []engine.Choice{{ID: "go", Label: "/start yes"}}})
			if err := c.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			if len(rec.got) != 1 {
				t.Fatalf("inbound %+v, want one", rec.got)
			}
			if in := rec.got[0]; in.Invite != tt.invite || in.Text == "" {
				t.Errorf("Invite = %q (text %q), want %q", in.Invite, in.Text, tt.invite)
			}
		})
	}
}
