package discord

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/aftercare-clinic/aftercare/bot/chunk"
	"github.com/aftercare-clinic/aftercare/bot/discord/discordfake"
	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"
)

func TestDMConversationWithButtons(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	ctx := context.Background()

	// The patient writes first; the text reaches the Receiver.
	msgID := h.fake.DM(patientA, "hi, I had dry needling today <@123> @everyone")
	eventually(t, 5*time.Second, "first message received", func() bool { return len(h.rec.inbound()) == 1 })
	got := h.rec.inbound()[0]
	want := service.Inbound{Patient: patient(patientA), Text: "hi, I had dry needling today <@123> @everyone", DedupeKey: "discord:msg:" + msgID, DisplayName: "Patient " + patientA}
	if got != want {
		t.Fatalf("inbound = %+v, want %+v", got, want)
	}

	// The engine asks a readiness question with buttons.
	err := h.bot.Send(ctx, engine.Outbound{ID: 11, To: patient(patientA), Kind: engine.KindReply,
		Text: "Did you eat in the last 2 hours?", Choices: []engine.Choice{{ID: "ate:yes", Label: "Yes"}, {ID: "ate:no", Label: "No"}}})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	msgs := h.fake.MessagesIn(h.fake.DMChannel(patientA))
	if len(msgs) != 1 {
		t.Fatalf("DM messages = %d, want 1", len(msgs))
	}
	q := msgs[0]
	if q.Content != "Did you eat in the last 2 hours?" || len(q.Buttons) != 2 || q.Buttons[0].CustomID != "ate:yes" || q.Buttons[1].Label != "No" {
		t.Fatalf("question = %+v", q)
	}
	assertNoMentions(t, q.AllowedMentions)
	if q.Nonce == "" || !q.EnforceNonce {
		t.Errorf("message without an enforced nonce: %+v", q)
	}

	// The patient presses "No": the interaction is answered first, within
	// Discord's 3 s window, then the choice reaches the Receiver.
	iid := h.fake.Click("", patientA, nil, q, "ate:no")
	eventually(t, 5*time.Second, "choice received", func() bool { return len(h.rec.inbound()) == 2 })
	cb, ok := h.fake.Callback(iid)
	if !ok {
		t.Fatal("interaction never answered")
	}
	if cb.Delay > 3*time.Second {
		t.Errorf("interaction answered after %s", cb.Delay)
	}
	if cb.Type != int(discordgo.InteractionResponseUpdateMessage) || len(cb.Buttons) != 2 || !cb.Buttons[0].Disabled || cb.Buttons[1].Style != int(discordgo.SuccessButton) {
		t.Errorf("callback = %+v, want an update disabling the buttons and marking the pressed one", cb)
	}
	choice := h.rec.inbound()[1]
	if choice.Choice != "ate:no" || choice.Text != "No" || choice.DedupeKey != "discord:interaction:"+iid || choice.Patient != patient(patientA) {
		t.Errorf("choice = %+v", choice)
	}
	h.rec.mu.Lock()
	receivedAt := h.rec.at[choice.DedupeKey]
	h.rec.mu.Unlock()
	if receivedAt.Before(cb.At) {
		t.Errorf("the choice reached the Receiver before the interaction was answered")
	}

	// Free text works where a button does, and the bot's own DM echo (the
	// fake sends MESSAGE_CREATE for it, like Discord) is never handled.
	h.fake.DM(patientA, "no")
	eventually(t, 5*time.Second, "typed answer received", func() bool { return len(h.rec.inbound()) == 3 })
	time.Sleep(100 * time.Millisecond)
	if n := len(h.rec.inbound()); n != 3 {
		t.Errorf("inbound = %d, want 3 (own messages must be skipped)", n)
	}
	if h.rec.duplicates() != 0 {
		t.Errorf("duplicates = %d", h.rec.duplicates())
	}
	// Logs carry IDs only, never what the patient or the engine said.
	for _, secret := range []string{"dry needling", "eat in the last", "Patient " + patientA} {
		if strings.Contains(h.logs.String(), secret) {
			t.Errorf("logs contain %q", secret)
		}
	}
	if u := h.fake.Unexpected(); len(u) != 0 {
		t.Errorf("unexpected requests: %+v", u)
	}
}

func assertNoMentions(t *testing.T, raw json.RawMessage) {
	t.Helper()
	if raw == nil {
		t.Fatal("allowed_mentions missing")
	}
	var am map[string]any
	if err := json.Unmarshal(raw, &am); err != nil {
		t.Fatalf("allowed_mentions: %v", err)
	}
	parse, ok := am["parse"].([]any)
	if !ok || len(parse) != 0 {
		t.Errorf("allowed_mentions.parse = %v, want present and empty", am["parse"])
	}
	if am["users"] != nil || am["roles"] != nil {
		t.Errorf("allowed_mentions allows users or roles: %s", raw)
	}
}

func TestCheckinOpensDMItself(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	// The patient never wrote on Discord (enrolled by the clinic): the
	// 24 h check-in opens the DM channel.
	err := h.bot.Send(context.Background(), engine.Outbound{ID: 21, To: patient(patientB), Kind: engine.KindCheckin, Text: "How are you feeling 24 hours after your session?"})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	ch := h.fake.DMChannel(patientB)
	if m := h.fake.MessagesIn(ch); len(m) != 1 || !strings.HasPrefix(m[0].Content, "How are you feeling") {
		t.Fatalf("DM = %+v", m)
	}
	opened := 0
	for _, r := range h.fake.Requests() {
		if r.Method == "POST" && strings.HasSuffix(r.Path, "/users/@me/channels") {
			opened++
		}
	}
	// A second message reuses the cached channel.
	if err := h.bot.Send(context.Background(), engine.Outbound{ID: 22, To: patient(patientB), Kind: engine.KindNudge, Text: "Just checking in."}); err != nil {
		t.Fatal(err)
	}
	for _, r := range h.fake.Requests() {
		if r.Method == "POST" && strings.HasSuffix(r.Path, "/users/@me/channels") {
			opened--
		}
	}
	if opened != 0 {
		t.Errorf("DM channel opened again for the second message")
	}
}

func TestSendRefusesPublicDestinations(t *testing.T) {
	t.Parallel()
	h := prepare(t, nil) // REST only: Send works before Run
	ctx := context.Background()
	cases := []engine.Outbound{
		{To: patient(patientA), Channel: engine.NewPatientID(Platform, publicCh), Kind: engine.KindCheckin, Text: "health talk"},
		{To: engine.StaffAddress, Channel: engine.NewPatientID(Platform, publicCh), Kind: engine.KindAlert, Text: "alert"},
		{To: engine.StaffAddress, Kind: engine.KindAlert, Text: "alert"},
		{To: engine.NewPatientID("telegram", "42"), Kind: engine.KindReply, Text: "wrong platform"},
		{To: patient("not-an-id"), Kind: engine.KindReply, Text: "bad id"},
	}
	for _, m := range cases {
		if err := h.bot.Send(ctx, m); err == nil {
			t.Errorf("Send(%s, channel %q) = nil, want refusal", m.To, m.Channel)
		}
	}
	if n := h.fake.MessageAttempts(); n != 0 {
		t.Errorf("%d messages posted, want none", n)
	}
}

// TestSendPrivateOnlyToTheUsersDM: a private message (a desk sign-in
// link) goes to the named user's DM, never to the staff channel even when
// addressed as a staff message would be; a private message naming a
// channel or a non-user is refused as unreachable (dropped, not retried),
// and so is one to a user whose DMs are closed.
func TestSendPrivateOnlyToTheUsersDM(t *testing.T) {
	t.Parallel()
	h := prepare(t, nil)
	ctx := context.Background()
	user := patient(patientA)
	if err := h.bot.Send(ctx, engine.Outbound{ID: 61, To: user, Channel: user, Kind: engine.KindNotice, Private: true, Text: "link https://x/login?t=a_b"}); err != nil {
		t.Fatal(err)
	}
	if got := h.fake.MessagesIn(h.fake.DMChannel(patientA)); len(got) != 1 || got[0].Content != "link https://x/login?t=a_b" {
		t.Fatalf("DM got %+v, want the link as written", got)
	}
	refused := []engine.Outbound{
		{To: engine.StaffAddress, Channel: engine.NewPatientID(Platform, staffCh), Kind: engine.KindNotice, Private: true, Text: "link"},
		{To: user, Channel: engine.NewPatientID(Platform, publicCh), Kind: engine.KindNotice, Private: true, Text: "link"},
		{To: patient("not-an-id"), Kind: engine.KindNotice, Private: true, Text: "link"},
	}
	for _, m := range refused {
		if err := h.bot.Send(ctx, m); !errors.Is(err, service.ErrUnreachable) {
			t.Errorf("Send(private to %s, channel %q) = %v, want ErrUnreachable", m.To, m.Channel, err)
		}
	}
	h.fake.CloseDMs(patientB)
	pb := patient(patientB)
	if err := h.bot.Send(ctx, engine.Outbound{ID: 62, To: pb, Channel: pb, Kind: engine.KindNotice, Private: true, Text: "link"}); !errors.Is(err, service.ErrUnreachable) {
		t.Errorf("private message to closed DMs: %v, want ErrUnreachable", err)
	}
	if n := len(h.fake.MessagesIn(staffCh)); n != 0 {
		t.Errorf("%d messages in the staff channel, want none", n)
	}
}

func TestStaffAlertAndAck(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	alert := engine.Outbound{ID: 31, To: engine.StaffAddress, Channel: engine.NewPatientID(Platform, staffCh), Kind: engine.KindAlert,
		Level: engine.Urgent, Patient: patient(patientA), EscalationID: 1,
		Text:    "URGENT patient discord:" + patientA + " (Patient A): \"dizzy and my chest hurts @everyone\"",
		Choices: []engine.Choice{{ID: "ack:1", Label: "Acknowledge"}}}
	if err := h.bot.Send(context.Background(), alert); err != nil {
		t.Fatalf("Send alert: %v", err)
	}
	msgs := h.fake.MessagesIn(staffCh)
	if len(msgs) != 1 {
		t.Fatalf("staff channel messages = %d, want 1", len(msgs))
	}
	m := msgs[0]
	if !strings.HasPrefix(m.Content, "<@&"+staffRole+"> URGENT") || !strings.Contains(m.Content, "chest hurts") {
		t.Errorf("alert content = %q", m.Content)
	}
	var am struct {
		Parse []string `json:"parse"`
		Roles []string `json:"roles"`
		Users []string `json:"users"`
	}
	if err := json.Unmarshal(m.AllowedMentions, &am); err != nil || am.Parse == nil || len(am.Parse) != 0 || len(am.Users) != 0 || len(am.Roles) != 1 || am.Roles[0] != staffRole {
		t.Errorf("allowed_mentions = %s: want no parse, only the staff role (never @everyone from the text)", m.AllowedMentions)
	}

	// A nurse with the staff role acknowledges.
	iid := h.fake.Click(guildID, nurse, []string{staffRole}, m, "ack:1")
	eventually(t, 5*time.Second, "ack received", func() bool { return len(h.rec.staffInbound()) == 1 })
	got := h.rec.staffInbound()[0]
	want := service.StaffInbound{Staff: "discord:" + nurse, Channel: engine.NewPatientID(Platform, staffCh), Choice: "ack:1", DedupeKey: "discord:interaction:" + iid}
	if got != want {
		t.Errorf("staff inbound = %+v, want %+v", got, want)
	}
	if cb, ok := h.fake.Callback(iid); !ok || cb.Delay > 3*time.Second {
		t.Errorf("ack interaction answered = %v (%+v)", ok, cb)
	}

	// A staff command's answer addressed straight to the staff channel.
	if err := h.bot.Send(context.Background(), engine.Outbound{ID: 33, To: engine.NewPatientID(Platform, staffCh), Kind: engine.KindNotice, Text: "noted"}); err != nil {
		t.Fatal(err)
	}
	if msgs := h.fake.MessagesIn(staffCh); len(msgs) != 2 || msgs[1].Content != "noted" {
		t.Errorf("staff channel = %+v", msgs)
	}

	// A notice (not urgent) pings nobody.
	if err := h.bot.Send(context.Background(), engine.Outbound{ID: 32, To: engine.StaffAddress, Channel: engine.NewPatientID(Platform, staffCh), Kind: engine.KindNotice, Text: "patient unreachable"}); err != nil {
		t.Fatal(err)
	}
	msgs = h.fake.MessagesIn(staffCh)
	assertNoMentions(t, msgs[len(msgs)-1].AllowedMentions)
}

func TestStaffCommandsOnlyFromStaff(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *Config) { c.StaffMessages = true })
	if in := h.fake.Intents(); in&int64(discordgo.IntentsMessageContent) == 0 || in&int64(discordgo.IntentsDirectMessages) == 0 {
		t.Errorf("intents = %b, want DirectMessages and MessageContent with staff_messages", in)
	}
	alert := discordfake.Message{ID: "5000000000000000001", ChannelID: staffCh, Content: "alert",
		Components: json.RawMessage(`[{"type":1,"components":[{"type":2,"style":1,"label":"Acknowledge","custom_id":"ack:9"}]}]`)}

	// Someone without the staff role tries everything.
	i1 := h.fake.Slash(guildID, staffCh, stranger, nil, "staff", map[string]string{"command": "ack 9"})
	i2 := h.fake.Click(guildID, stranger, []string{"777"}, alert, "ack:9")
	h.fake.GuildMessage(guildID, staffCh, stranger, nil, "/ack 9")
	// Staff in the wrong channel.
	i3 := h.fake.Slash(guildID, publicCh, nurse, []string{staffRole}, "staff", map[string]string{"command": "open"})
	for _, id := range []string{i1, i2} {
		eventually(t, 5*time.Second, "refusal", func() bool { _, ok := h.fake.Callback(id); return ok })
		cb, _ := h.fake.Callback(id)
		if cb.Flags&int(discordgo.MessageFlagsEphemeral) == 0 || cb.Content != textStaffOnly {
			t.Errorf("refusal = %+v, want ephemeral %q", cb, textStaffOnly)
		}
	}
	eventually(t, 5*time.Second, "wrong-channel answer", func() bool { _, ok := h.fake.Callback(i3); return ok })
	if cb, _ := h.fake.Callback(i3); cb.Content != textStaffWhere {
		t.Errorf("wrong channel answer = %q", cb.Content)
	}
	eventually(t, 5*time.Second, "typed refusal", func() bool { return len(h.fake.MessagesIn(staffCh)) == 1 })
	if m := h.fake.MessagesIn(staffCh)[0]; m.Content != textStaffOnly {
		t.Errorf("typed refusal = %q", m.Content)
	}

	// Real staff: by role (typed, and /staff) and by user ID.
	msgID := h.fake.GuildMessage(guildID, staffCh, nurse, []string{staffRole}, "/open")
	h.fake.GuildMessage(guildID, staffCh, nurse, []string{staffRole}, "coffee anyone?") // chatter is ignored
	i4 := h.fake.Slash(guildID, staffCh, staffUser, nil, "staff", map[string]string{"command": "ack 9"})
	eventually(t, 5*time.Second, "staff commands", func() bool { return len(h.rec.staffInbound()) == 2 })
	time.Sleep(100 * time.Millisecond)
	got := h.rec.staffInbound()
	if len(got) != 2 {
		t.Fatalf("staff inbound = %+v", got)
	}
	byKey := map[string]service.StaffInbound{got[0].DedupeKey: got[0], got[1].DedupeKey: got[1]}
	if s := byKey["discord:msg:"+msgID]; s.Text != "/open" || s.Staff != "discord:"+nurse {
		t.Errorf("typed staff command = %+v", s)
	}
	if s := byKey["discord:interaction:"+i4]; s.Text != "/ack 9" || s.Staff != "discord:"+staffUser || s.Channel != engine.NewPatientID(Platform, staffCh) {
		t.Errorf("/staff command = %+v", s)
	}
	if len(h.rec.inbound()) != 0 {
		t.Errorf("staff channel traffic reached the patient path: %+v", h.rec.inbound())
	}
}

func TestSlashAftercareOpensDM(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	eventually(t, 5*time.Second, "commands registered", func() bool { return len(h.fake.Commands()) == 1 })
	if c := h.fake.Commands()[0]; c.Method != "PUT" || c.GuildID != guildID || strings.Join(c.Names, ",") != "aftercare,staff" {
		t.Errorf("commands = %+v", c)
	}
	if in := h.fake.Intents(); in != int64(discordgo.IntentsDirectMessages|discordgo.IntentsGuilds) {
		t.Errorf("intents = %b, want DirectMessages|Guilds only", in)
	}
	iid := h.fake.Slash(guildID, publicCh, patientB, nil, "aftercare", map[string]string{"code": " CLINIC-42 "})
	eventually(t, 5*time.Second, "/start received", func() bool { return len(h.rec.inbound()) == 1 })
	if in := h.rec.inbound()[0]; in.Text != "/start CLINIC-42" || in.Invite != "CLINIC-42" || in.Patient != patient(patientB) || in.DedupeKey != "discord:interaction:"+iid {
		t.Errorf("inbound = %+v", in)
	}
	cb, ok := h.fake.Callback(iid)
	if !ok || cb.Flags&int(discordgo.MessageFlagsEphemeral) == 0 || cb.Content != textDMSent {
		t.Errorf("callback = %+v, want the ephemeral DM notice", cb)
	}
	// The engine's greeting goes to the DM, never to the public channel.
	if err := h.bot.Send(context.Background(), engine.Outbound{ID: 41, To: patient(patientB), Kind: engine.KindReply, Text: "Welcome"}); err != nil {
		t.Fatal(err)
	}
	if len(h.fake.MessagesIn(publicCh)) != 0 || len(h.fake.MessagesIn(h.fake.DMChannel(patientB))) != 1 {
		t.Errorf("greeting not in the DM: %+v", h.fake.Messages())
	}
}

func TestRateLimitRetriedThenSucceeds(t *testing.T) {
	t.Parallel()
	for _, global := range []bool{false, true} {
		h := prepare(t, nil)
		h.fake.Force429(2, 150*time.Millisecond, global)
		begin := time.Now()
		err := h.bot.Send(context.Background(), engine.Outbound{ID: 51, To: patient(patientA), Kind: engine.KindReply, Text: "hello"})
		if err != nil {
			t.Fatalf("global=%v: Send: %v", global, err)
		}
		if el := time.Since(begin); el < 300*time.Millisecond {
			t.Errorf("global=%v: sent after %s, want at least 2×retry_after", global, el)
		}
		if a, m := h.fake.MessageAttempts(), len(h.fake.Messages()); a != 3 || m != 1 {
			t.Errorf("global=%v: attempts=%d messages=%d, want 3 and 1", global, a, m)
		}
	}
}

func TestRateLimitPersistingIsHandedBack(t *testing.T) {
	t.Parallel()
	h := prepare(t, nil)
	h.fake.Force429(20, 40*time.Millisecond, false)
	err := h.bot.Send(context.Background(), engine.Outbound{ID: 52, To: patient(patientA), Kind: engine.KindCheckin, Text: "hello"})
	var ra *service.RetryAfterError
	if !errors.As(err, &ra) || ra.After != 40*time.Millisecond {
		t.Fatalf("Send = %v, want *service.RetryAfterError after 40ms", err)
	}
	if a := h.fake.MessageAttempts(); a != maxRateRetries+1 {
		t.Errorf("attempts = %d, want %d (bounded)", a, maxRateRetries+1)
	}
	// A long retry_after is handed back at once instead of blocking the dispatcher.
	h2 := prepare(t, nil)
	h2.fake.Force429(1, 30*time.Second, true)
	begin := time.Now()
	err = h2.bot.Send(context.Background(), engine.Outbound{ID: 53, To: patient(patientA), Kind: engine.KindCheckin, Text: "hello"})
	if !errors.As(err, &ra) || ra.After != 30*time.Second || time.Since(begin) > 5*time.Second {
		t.Errorf("Send = %v after %s, want RetryAfterError(30s) at once", err, time.Since(begin))
	}
}

func TestClosedDMsAreUnreachable(t *testing.T) {
	t.Parallel()
	h := prepare(t, nil)
	h.fake.CloseDMs(patientA)
	err := h.bot.Send(context.Background(), engine.Outbound{ID: 61, To: patient(patientA), Kind: engine.KindCheckin, Text: "How are you?"})
	if !errors.Is(err, service.ErrUnreachable) {
		t.Fatalf("Send = %v, want ErrUnreachable", err)
	}
	if a := h.fake.MessageAttempts(); a != 1 {
		t.Errorf("attempts = %d, want 1 (50007 is not retried)", a)
	}
	if strings.Contains(err.Error(), "How are you") {
		t.Errorf("error contains the message text: %v", err)
	}
}

func TestLongTextIsSplit(t *testing.T) {
	t.Parallel()
	h := prepare(t, nil)
	para := strings.Repeat("Rest today and drink water. ", 40) + "\n" // 1121 chars
	text := strings.Repeat(para, 4) + "🙂 end"
	choices := []engine.Choice{{ID: "ok", Label: "OK"}}
	if err := h.bot.Send(context.Background(), engine.Outbound{ID: 71, To: patient(patientA), Kind: engine.KindReply, Text: text, Choices: choices}); err != nil {
		t.Fatal(err)
	}
	msgs := h.fake.Messages()
	if len(msgs) < 3 {
		t.Fatalf("parts = %d, want ≥ 3", len(msgs))
	}
	var joined strings.Builder
	nonces := map[string]bool{}
	for i, m := range msgs {
		if chunk.UTF16Len(m.Content) > MaxMessageLength {
			t.Errorf("part %d has %d characters", i, chunk.UTF16Len(m.Content))
		}
		if (len(m.Buttons) > 0) != (i == len(msgs)-1) {
			t.Errorf("part %d buttons = %v, want buttons on the last part only", i, m.Buttons)
		}
		assertNoMentions(t, m.AllowedMentions)
		nonces[m.Nonce] = true
		joined.WriteString(m.Content)
	}
	if joined.String() != text {
		t.Errorf("parts do not join back to the text")
	}
	if len(nonces) != len(msgs) {
		t.Errorf("nonces not distinct: %v", nonces)
	}
}

func TestSplitSendResumesAfterFailure(t *testing.T) {
	t.Parallel()
	h := prepare(t, nil)
	text := strings.Repeat("a", 1999) + " " + strings.Repeat("b", 1999) + " " + strings.Repeat("c", 10)
	m := engine.Outbound{ID: 72, To: patient(patientA), Kind: engine.KindCheckin, Text: text}
	h.fake.Pass(1)
	h.fake.Force429(maxRateRetries+1, 20*time.Millisecond, false)
	var ra *service.RetryAfterError
	if err := h.bot.Send(context.Background(), m); !errors.As(err, &ra) {
		t.Fatalf("first Send = %v, want RetryAfterError", err)
	}
	if err := h.bot.Send(context.Background(), m); err != nil {
		t.Fatalf("retry: %v", err)
	}
	msgs := h.fake.Messages()
	var joined string
	for _, x := range msgs {
		joined += x.Content
	}
	if len(msgs) != 3 || joined != text {
		t.Errorf("got %d parts (joined ok=%v), want 3 parts, none twice", len(msgs), joined == text)
	}
}

func TestPacingAndRouteBuckets(t *testing.T) {
	t.Parallel()
	// Global pacer: 6 requests at 10/s take at least ~0.5 s.
	h := prepare(t, func(c *Config) { c.RequestsPerSecond = 10 })
	begin := time.Now()
	for i := range 3 {
		if err := h.bot.Send(context.Background(), engine.Outbound{ID: uint64(80 + i), To: patient(patientA), Kind: engine.KindCheckin, Text: "x"}); err != nil {
			t.Fatal(err)
		}
		if err := h.bot.Send(context.Background(), engine.Outbound{ID: uint64(90 + i), To: patient(patientB), Kind: engine.KindCheckin, Text: "y"}); err != nil {
			t.Fatal(err)
		}
	}
	// 6 messages + 2 DM opens = 8 requests.
	if el := time.Since(begin); el < 650*time.Millisecond {
		t.Errorf("8 requests at 10/s took %s", el)
	}

	// Per-route buckets: the fake allows 2 messages per 300 ms per channel
	// and says so in X-RateLimit-*; discordgo's buckets must wait, so the
	// fake never has to answer 429.
	h2 := prepare(t, nil, discordfake.WithRouteLimit(2, 300*time.Millisecond))
	begin = time.Now()
	for i := range 6 {
		if err := h2.bot.Send(context.Background(), engine.Outbound{ID: uint64(100 + i), To: patient(patientA), Kind: engine.KindCheckin, Text: "z"}); err != nil {
			t.Fatal(err)
		}
	}
	if n := h2.fake.UnsolicitedLimits(); n != 0 {
		t.Errorf("the fake had to answer 429 %d times: buckets not respected", n)
	}
	if len(h2.fake.Messages()) != 6 || time.Since(begin) < 550*time.Millisecond {
		t.Errorf("messages = %d in %s", len(h2.fake.Messages()), time.Since(begin))
	}
}

func TestGatewayDropResumeNoLossNoDuplicates(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	m1 := h.fake.DM(patientA, "one")
	eventually(t, 5*time.Second, "m1", func() bool { return len(h.rec.inbound()) == 1 })

	// Network blip: messages sent meanwhile are kept by Discord and
	// replayed on RESUME; the fake also replays two already-seen events.
	h.fake.ResendOnResume(2)
	h.fake.Drop()
	dropped := time.Now()
	m2 := h.fake.DM(patientA, "two")
	m3 := h.fake.DM(patientB, "three")
	m4 := h.fake.DM(patientA, "four")
	eventually(t, 30*time.Second, "resumed", func() bool { return h.fake.Resumes() == 1 && h.fake.Connected() })
	if el := time.Since(dropped); el > 10*time.Second {
		t.Errorf("reconnect took %s", el)
	}
	eventually(t, 5*time.Second, "replayed messages", func() bool { return len(h.rec.inbound()) == 4 })
	m5 := h.fake.DM(patientA, "five")
	eventually(t, 5*time.Second, "m5", func() bool { return len(h.rec.inbound()) == 5 })
	time.Sleep(200 * time.Millisecond)

	var gotA []string
	count := map[string]int{}
	for _, in := range h.rec.inbound() {
		count[in.DedupeKey]++
		if in.Patient == patient(patientA) {
			gotA = append(gotA, in.Text)
		}
	}
	for _, id := range []string{m1, m2, m3, m4, m5} {
		if count["discord:msg:"+id] != 1 {
			t.Errorf("message %s handled %d times, want once", id, count["discord:msg:"+id])
		}
	}
	if strings.Join(gotA, ",") != "one,two,four,five" {
		t.Errorf("patient A order = %v", gotA)
	}
	if d := h.rec.duplicates(); d != 0 {
		t.Errorf("Receiver saw %d duplicates; the adapter should drop replays it already delivered", d)
	}
	if !strings.Contains(h.logs.String(), "duplicate update skipped") {
		t.Errorf("the fake replayed already-seen events but the adapter never skipped one")
	}
	if h.fake.Identifies() != 1 {
		t.Errorf("identifies = %d, want 1 (resume, not a new session)", h.fake.Identifies())
	}

	// op 7 RECONNECT: resume again.
	h.fake.Reconnect()
	eventually(t, 30*time.Second, "resumed after op 7", func() bool { return h.fake.Resumes() == 2 && h.fake.Connected() })
	m6 := h.fake.DM(patientB, "six")
	eventually(t, 5*time.Second, "m6", func() bool { return len(h.rec.inbound()) == 6 })

	// op 9 INVALID SESSION: a fresh IDENTIFY on the same connection.
	h.fake.InvalidSession(false)
	eventually(t, 10*time.Second, "re-identified", func() bool { return h.fake.Identifies() == 2 })
	m7 := h.fake.DM(patientB, "seven")
	eventually(t, 5*time.Second, "m7", func() bool { return len(h.rec.inbound()) == 7 })
	if in := h.rec.inbound(); in[5].DedupeKey != "discord:msg:"+m6 || in[6].DedupeKey != "discord:msg:"+m7 {
		t.Errorf("after reconnects: %+v", in[5:])
	}
}

func TestCompressedFrames(t *testing.T) {
	t.Parallel()
	h := start(t, nil, discordfake.WithCompression())
	id := h.fake.DM(patientA, "compressed hello")
	iid := h.fake.Click("", patientA, nil, discordfake.Message{ID: "5000000000000000009", ChannelID: h.fake.DMChannel(patientA), Content: "q",
		Components: json.RawMessage(`[{"type":1,"components":[{"type":2,"style":1,"label":"Yes","custom_id":"y"}]}]`)}, "y")
	eventually(t, 5*time.Second, "both received", func() bool { return len(h.rec.inbound()) == 2 })
	in := h.rec.inbound()
	if in[0].DedupeKey != "discord:msg:"+id || in[0].Text != "compressed hello" || in[1].Choice != "y" || in[1].Text != "Yes" || in[1].DedupeKey != "discord:interaction:"+iid {
		t.Errorf("inbound = %+v", in)
	}
	if n := h.fake.CompressedFrames(); n < 3 { // READY + 2
		t.Errorf("compressed frames = %d, want the dispatches compressed", n)
	}
	// Resume over compressed frames too.
	h.fake.Drop()
	id2 := h.fake.DM(patientA, "after the blip")
	eventually(t, 30*time.Second, "replayed", func() bool { return len(h.rec.inbound()) == 3 })
	if got := h.rec.inbound()[2]; got.DedupeKey != "discord:msg:"+id2 {
		t.Errorf("replayed = %+v", got)
	}
}

func TestReceiverFailureAsksPatientToResend(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	h.rec.mu.Lock()
	h.rec.fail = 100
	h.rec.mu.Unlock()
	h.fake.DM(patientA, "my arm is numb")
	eventually(t, 5*time.Second, "apology", func() bool { return len(h.fake.MessagesIn(h.fake.DMChannel(patientA))) == 1 })
	if m := h.fake.MessagesIn(h.fake.DMChannel(patientA))[0]; m.Content != textResendAsk {
		t.Errorf("apology = %q", m.Content)
	}
	// Once the store is back, a retry works.
	h.rec.mu.Lock()
	h.rec.fail = 0
	h.rec.mu.Unlock()
	h.fake.DM(patientA, "my arm is numb")
	eventually(t, 5*time.Second, "received", func() bool { return len(h.rec.inbound()) == 1 })
}

func TestPerUserOrderUnderLoad(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	var want []string
	for i := range 30 {
		txt := string(rune('a'+i%26)) + string(rune('0'+i/26))
		want = append(want, txt)
		h.fake.DM(patientA, txt)
		h.fake.DM(patientB, txt)
	}
	eventually(t, 10*time.Second, "all", func() bool { return len(h.rec.inbound()) == 60 })
	var gotA, gotB []string
	for _, in := range h.rec.inbound() {
		if in.Patient == patient(patientA) {
			gotA = append(gotA, in.Text)
		} else {
			gotB = append(gotB, in.Text)
		}
	}
	if strings.Join(gotA, ",") != strings.Join(want, ",") || strings.Join(gotB, ",") != strings.Join(want, ",") {
		t.Errorf("order broken:\nA=%v\nB=%v", gotA, gotB)
	}
}

func TestBadTokenNeverLeaks(t *testing.T) {
	t.Parallel()
	fake := discordfake.New("some-other-token")
	defer fake.Close()
	logs := &syncBuffer{}
	cfg := testConfig(fake)
	b, err := New(cfg, testToken, newRecorder(), slog_(logs))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = b.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("Run = %v, want the token rejected", err)
	}
	serr := b.Send(ctx, engine.Outbound{ID: 1, To: patient(patientA), Kind: engine.KindReply, Text: "x"})
	if serr == nil {
		t.Fatal("Send with a bad token succeeded")
	}
	for _, s := range []string{err.Error(), serr.Error(), logs.String(), fmtBot(b)} {
		if strings.Contains(s, testToken) || strings.Contains(s, "SECRETxSECRET") {
			t.Errorf("token leaked: %s", s)
		}
	}
}

func TestNewRejectsBadInput(t *testing.T) {
	t.Parallel()
	cfg := Config{StaffChannelID: staffCh, StaffRoleIDs: []string{staffRole}}
	if _, err := New(cfg, "", newRecorder(), nil); err == nil || !strings.Contains(err.Error(), "AFTERCARE_DISCORD_TOKEN") {
		t.Errorf("empty token: %v", err)
	}
	if _, err := New(cfg, "abc def", newRecorder(), nil); err == nil {
		t.Error("token with a space accepted")
	}
	if _, err := New(cfg, testToken, nil, nil); err == nil {
		t.Error("nil Receiver accepted")
	}
	if _, err := New(Config{}, testToken, newRecorder(), nil); err == nil || !strings.Contains(err.Error(), "discord.staff_channel_id") {
		t.Errorf("bad config: %v", err)
	}
}

func TestShutdownDrainsQueuedUpdatesAndClosesCleanly(t *testing.T) {
	t.Parallel()
	h := prepare(t, nil)
	h.rec.mu.Lock()
	h.rec.delay = time.Second
	h.rec.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.bot.Run(ctx) }()
	eventually(t, 10*time.Second, "connected", h.fake.Connected)
	for _, txt := range []string{"a", "b", "c"} {
		h.fake.DM(patientA, txt)
	}
	// Wait until the adapter has taken all three from the gateway (the
	// first is in Receive, the others queued), then shut down.
	eventually(t, 5*time.Second, "queued", func() bool {
		h.bot.mu.Lock()
		defer h.bot.mu.Unlock()
		q := h.bot.queues[patientA]
		return q != nil && len(q.items) == 2
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if n := len(h.rec.inbound()); n != 3 {
		t.Errorf("%d of 3 queued messages reached the Receiver before Run returned", n)
	}
	if h.fake.Connected() {
		t.Error("the gateway is still connected after Run returned")
	}
	if h.fake.Resumes() != 0 || h.fake.Identifies() != 1 {
		t.Errorf("identifies=%d resumes=%d: shutdown must not reconnect", h.fake.Identifies(), h.fake.Resumes())
	}
}
