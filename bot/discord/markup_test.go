package discord

import (
	"context"
	"strings"
	"testing"

	"github.com/aftercare-clinic/aftercare/engine"
)

// TestStaffMessagesShowPatientTextAsTyped sends staff messages quoting
// hostile patient text through the fake Discord server: markdown arrives
// escaped, so Discord shows the characters instead of a header, a masked
// "[Acknowledge](link)", emphasis or a spoiler, while the bot's own links
// stay usable. Patient messages are not changed.
func TestStaffMessagesShowPatientTextAsTyped(t *testing.T) {
	t.Parallel()
	h := prepare(t, nil)
	staff := engine.NewPatientID(Platform, staffCh)
	tests := []struct {
		name string
		m    engine.Outbound
		want string
	}{
		{"masked link and emphasis in an alert",
			engine.Outbound{ID: 81, To: engine.StaffAddress, Channel: staff, Kind: engine.KindAlert, Level: engine.Watch,
				Text: `[WATCH] discord:1 ("**Eve**"): Said: "[Acknowledge](https://evil.example/ack) ||ok|| ` + "`x`" + ` <@&1> @everyone"`},
			`\[WATCH\] discord:1 ("\*\*Eve\*\*"): Said: "\[Acknowledge\](https://evil.example/ack) \|\|ok\|\| ` + "\\`x\\`" + ` \<@&1\> @everyone"`},
		{"header and quote lines in a notice",
			engine.Outbound{ID: 82, To: engine.StaffAddress, Channel: staff, Kind: engine.KindNotice,
				Text: "# All clear\n> fine\n- item\n~~gone~~ __u__ a\\b"},
			"\\# All clear\n\\> fine\n\\- item\n\\~\\~gone\\~\\~ \\_\\_u\\_\\_ a\\\\b"},
		{"the bot's invite link stays a link",
			engine.Outbound{ID: 83, To: staff, Kind: engine.KindNotice,
				Text: "Visit recorded (dry needling, back). One-time invite:\nhttps://t.me/clinic_bot?start=a_B-c_D"},
			"Visit recorded (dry needling, back). One\\-time invite:\nhttps://t.me/clinic_bot?start=a_B-c_D"},
	}
	for _, tt := range tests {
		if err := h.bot.Send(context.Background(), tt.m); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		msgs := h.fake.MessagesIn(staffCh)
		if got := msgs[len(msgs)-1].Content; got != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, got, tt.want)
		}
	}
	text := "Rest today: **no** gym_workouts."
	if err := h.bot.Send(context.Background(), engine.Outbound{ID: 84, To: patient(patientA), Kind: engine.KindReply, Text: text}); err != nil {
		t.Fatal(err)
	}
	for _, m := range h.fake.Messages() {
		if strings.Contains(m.Content, "gym") && m.Content != text {
			t.Errorf("patient message changed: %q", m.Content)
		}
	}
}
