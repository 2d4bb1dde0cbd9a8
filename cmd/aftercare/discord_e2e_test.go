package main

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/bot/discord"
	"github.com/aftercare-clinic/aftercare/bot/discord/discordfake"
	"github.com/aftercare-clinic/aftercare/clock"
	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store"
)

// The Discord end-to-end test runs the real Main (store, engine, service,
// dispatcher, scheduler, discord adapter) against discordfake, which speaks
// the real gateway protocol and REST API, on a fake clock.

const (
	dcToken     = "MTAwMDAwMDAwMDAwMDAwMDAx.e2e-token.E2ESECRETxE2ESECRET"
	dcGuild     = "2100000000000000001"
	dcStaffCh   = "2100000000000000002"
	dcPublicCh  = "2100000000000000003"
	dcStaffRole = "2100000000000000004"
	dcNurse     = "2200000000000000001"
	dcDoctor    = "2200000000000000002" // staff, has DMs closed
	dcPatientA  = "2300000000000000001" // recorded by the clinic, does the readiness questions
	dcPatientB  = "2300000000000000002" // enrolls with /aftercare and a code, then STOPs
	dcPatientC  = "2300000000000000003" // recorded by the clinic, never writes: the check-in opens the DM
	dcPatientD  = "2300000000000000004" // has DMs closed
	dcStranger  = "2300000000000000009"
)

type dcWorld struct {
	t    *testing.T
	fake *discordfake.Server
	clk  *clock.Fake
	run  *Running
	logs *lockedBuffer
}

func startDiscordMain(t *testing.T) *dcWorld { return startDiscordMainWith(t, nil) }

// startDiscordMainWith is startDiscordMain with configure applied to the
// configuration first (nil: none).
func startDiscordMainWith(t *testing.T, configure func(*Config)) *dcWorld {
	t.Helper()
	fake := discordfake.New(dcToken, discordfake.WithCompression(), discordfake.WithHeartbeatInterval(time.Second))
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	off := false
	cfg.Console = &off
	cfg.Discord = &discord.Config{
		StaffChannelID:    dcStaffCh,
		StaffRoleIDs:      []string{dcStaffRole},
		GuildID:           dcGuild,
		APIBase:           fake.URL(),
		MaxReconnectDelay: discord.Duration(2 * time.Second),
	}
	if configure != nil {
		configure(&cfg)
	}
	clk := clock.NewFake(time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC))
	w := &dcWorld{t: t, fake: fake, clk: clk, logs: &lockedBuffer{}}
	m := &Main{
		Config: &cfg, Clock: clk, Stderr: w.logs,
		Getenv: func(k string) string {
			if k == EnvDiscordToken {
				return dcToken
			}
			return ""
		},
	}
	t.Cleanup(fake.Close) // runs after the bot's stop below
	var stop func()
	w.run, stop = startMain(t, m, w.logs)
	t.Cleanup(func() {
		stop() // the bot first, then the fake
		if strings.Contains(w.logs.String(), dcToken) {
			t.Errorf("the Discord token appears in the logs")
		}
	})
	dcEventually(t, 10*time.Second, "gateway connected", fake.Connected)
	return w
}

func dcEventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func dcPatient(id string) engine.PatientID { return engine.NewPatientID(discord.Platform, id) }

// dm returns the messages the bot posted in the patient's DM.
func (w *dcWorld) dm(user string) []discordfake.Message {
	return w.fake.MessagesIn(w.fake.DMChannel(user))
}

// next waits for the first message after the first `after` messages in
// channel whose content contains want, and returns it.
func (w *dcWorld) next(t *testing.T, channel string, after int, want string) discordfake.Message {
	t.Helper()
	var found discordfake.Message
	dcEventually(t, 10*time.Second, "a message containing "+want, func() bool {
		ms := w.fake.MessagesIn(channel)
		for i := after; i < len(ms); i++ {
			if strings.Contains(ms[i].Content, want) {
				found = ms[i]
				return true
			}
		}
		return false
	})
	return found
}

// press clicks the button labelled label on m as user, in a DM, and checks
// the interaction was answered within Discord's window.
func (w *dcWorld) press(t *testing.T, user string, m discordfake.Message, label string) {
	t.Helper()
	for _, b := range m.Buttons {
		if b.Label == label {
			id := w.fake.Click("", user, nil, m, b.CustomID)
			dcEventually(t, 5*time.Second, "interaction answered", func() bool { _, ok := w.fake.Callback(id); return ok })
			if cb, _ := w.fake.Callback(id); cb.Delay > 3*time.Second {
				t.Errorf("interaction answered after %s", cb.Delay)
			}
			return
		}
	}
	t.Fatalf("no button %q on %q (buttons %+v)", label, m.Content, m.Buttons)
}

// settle waits a moment and reports whether channel still has n messages.
func (w *dcWorld) settle(channel string, n int) bool {
	time.Sleep(400 * time.Millisecond)
	return len(w.fake.MessagesIn(channel)) == n
}

func TestDiscordEndToEnd(t *testing.T) {
	w := startDiscordMain(t)
	ctx := context.Background()
	svc := w.run.Service
	visit := func(id string) {
		t.Helper()
		if err := svc.RecordVisit(ctx, dcPatient(id), engine.Visit{At: w.clk.Now(), Treatment: engine.DryNeedling, Area: "lower back", Source: "clinic", Consent: true}); err != nil {
			t.Fatal(err)
		}
	}
	visit(dcPatientA)
	visit(dcPatientC)

	t.Run("readiness questions with buttons", func(t *testing.T) {
		w.fake.DM(dcPatientA, "can I lift tonight?")
		q := w.next(t, w.fake.DMChannel(dcPatientA), 0, "How is your energy")
		if len(q.Buttons) != 4 {
			t.Fatalf("energy question buttons = %+v", q.Buttons)
		}
		n := len(w.dm(dcPatientA))
		w.press(t, dcPatientA, q, "Energized")
		q = w.next(t, w.fake.DMChannel(dcPatientA), n, "Gently move")
		n = len(w.dm(dcPatientA))
		w.press(t, dcPatientA, q, "Smoother than before")
		q = w.next(t, w.fake.DMChannel(dcPatientA), n, "dizziness")
		n = len(w.dm(dcPatientA))
		w.press(t, dcPatientA, q, "None")
		q = w.next(t, w.fake.DMChannel(dcPatientA), n, "your pain is")
		n = len(w.dm(dcPatientA))
		w.press(t, dcPatientA, q, "Better")
		adv := w.next(t, w.fake.DMChannel(dcPatientA), n, "Light activity")
		if len(adv.Buttons) != 0 || !strings.Contains(adv.Content, "dry needling") {
			t.Errorf("advice = %+v", adv)
		}
		if !w.settle(w.fake.DMChannel(dcPatientA), n+1) {
			t.Errorf("extra messages after the advice: %d", len(w.dm(dcPatientA))-n)
		}
		for _, m := range w.fake.Messages() {
			if m.ChannelID == dcPublicCh {
				t.Errorf("a message went to a public channel: %q", m.Content)
			}
		}
	})

	t.Run("enrollment with /aftercare and a clinic code", func(t *testing.T) {
		inv, err := svc.CreateInvite(ctx, engine.Visit{At: w.clk.Now(), Treatment: engine.Acupuncture, Area: "shoulder"}, 0)
		if err != nil {
			t.Fatal(err)
		}
		id := w.fake.Slash(dcGuild, dcPublicCh, dcPatientB, nil, "aftercare", map[string]string{"code": inv.Token})
		dcEventually(t, 5*time.Second, "ephemeral answer", func() bool { _, ok := w.fake.Callback(id); return ok })
		if cb, _ := w.fake.Callback(id); cb.Flags&64 == 0 {
			t.Errorf("the /aftercare answer is not ephemeral: %+v", cb)
		}
		dcEventually(t, 10*time.Second, "welcome in the DM", func() bool { return len(w.dm(dcPatientB)) > 0 })
		if len(w.fake.MessagesIn(dcPublicCh)) != 0 {
			t.Errorf("the welcome went to the public channel")
		}
	})

	t.Run("red flag reaches the staff channel", func(t *testing.T) {
		n := len(w.dm(dcPatientA))
		w.fake.DM(dcPatientA, "shortness of breath and chest pain")
		w.next(t, w.fake.DMChannel(dcPatientA), n, "Call 911 now")
		alert := w.next(t, dcStaffCh, 0, `\[EMERGENCY\]`) // markdown escaped for staff
		for _, want := range []string{"<@&" + dcStaffRole + ">", "discord:" + dcPatientA, "chest pain"} {
			if !strings.Contains(alert.Content, want) {
				t.Errorf("alert %q lacks %q", alert.Content, want)
			}
		}
		if !bytes.Contains(alert.AllowedMentions, []byte(`"parse":[]`)) {
			t.Errorf("alert allowed_mentions = %s", alert.AllowedMentions)
		}
		// Someone without the staff role is refused; a nurse acknowledges
		// with the alert's button, then lists open alerts with /staff.
		refused := w.fake.Slash(dcGuild, dcStaffCh, dcStranger, nil, "staff", map[string]string{"command": "open"})
		dcEventually(t, 5*time.Second, "refusal", func() bool { _, ok := w.fake.Callback(refused); return ok })
		if cb, _ := w.fake.Callback(refused); !strings.Contains(cb.Content, "only clinic staff") {
			t.Errorf("refusal = %+v", cb)
		}
		var ack string
		for _, b := range alert.Buttons {
			if strings.HasPrefix(b.CustomID, "ack:") {
				ack = b.CustomID
			}
		}
		if ack == "" {
			t.Fatalf("alert without an acknowledge button: %+v", alert.Buttons)
		}
		staffN := len(w.fake.MessagesIn(dcStaffCh))
		id := w.fake.Click(dcGuild, dcNurse, []string{dcStaffRole}, alert, ack)
		dcEventually(t, 5*time.Second, "ack answered", func() bool { _, ok := w.fake.Callback(id); return ok })
		w.next(t, dcStaffCh, staffN, "acknowledged by discord:"+dcNurse)
		staffN = len(w.fake.MessagesIn(dcStaffCh))
		w.fake.Slash(dcGuild, dcStaffCh, dcNurse, []string{dcStaffRole}, "staff", map[string]string{"command": "open"})
		w.next(t, dcStaffCh, staffN, "No open escalations")
	})

	t.Run("STOP", func(t *testing.T) {
		n := len(w.dm(dcPatientB))
		w.fake.DM(dcPatientB, "STOP")
		w.next(t, w.fake.DMChannel(dcPatientB), n, "stopped automatic messages")
	})

	t.Run("gateway drop and resume: no lost or doubled message", func(t *testing.T) {
		ch := w.fake.DMChannel(dcPatientA)
		n := len(w.dm(dcPatientA))
		resumes := w.fake.Resumes()
		w.fake.ResendOnResume(3) // Discord may replay events we already had
		w.fake.Drop()
		w.fake.DM(dcPatientA, "should I put ice on it?")
		dcEventually(t, 30*time.Second, "resumed", func() bool { return w.fake.Resumes() == resumes+1 && w.fake.Connected() })
		w.next(t, ch, n, "Heat, not ice")
		if !w.settle(ch, n+1) {
			t.Errorf("%d replies to one message after the resume, want 1", len(w.dm(dcPatientA))-n)
		}
		w.fake.ResendOnResume(0)
	})

	t.Run("429 is retried and the message is sent once", func(t *testing.T) {
		ch := w.fake.DMChannel(dcPatientA)
		n := len(w.dm(dcPatientA))
		w.fake.Force429(2, 100*time.Millisecond, false) // absorbed by the adapter
		w.fake.DM(dcPatientA, "thanks!")
		w.next(t, ch, n, "welcome")
		if !w.settle(ch, n+1) {
			t.Errorf("%d messages for one reply", len(w.dm(dcPatientA))-n)
		}
		n++
		w.fake.Force429(8, 100*time.Millisecond, true) // persists: handed back to the dispatcher, retried later
		w.fake.DM(dcPatientA, "should I put ice on it?")
		w.next(t, ch, n, "Heat, not ice")
		if !w.settle(ch, n+1) {
			t.Errorf("%d messages for one reply after a persistent 429", len(w.dm(dcPatientA))-n)
		}
	})

	t.Run("50007 marks the patient unreachable and tells staff", func(t *testing.T) {
		visit(dcPatientD)
		w.fake.CloseDMs(dcPatientD)
		staffN := len(w.fake.MessagesIn(dcStaffCh))
		w.fake.DM(dcPatientD, "hello")
		notice := w.next(t, dcStaffCh, staffN, "discord:"+dcPatientD)
		if strings.Contains(notice.Content, "hello") {
			t.Errorf("notice quotes the patient: %q", notice.Content)
		}
		if len(w.dm(dcPatientD)) != 0 {
			t.Errorf("a message reached a closed DM")
		}
	})

	t.Run("24 h check-in opens the DM itself", func(t *testing.T) {
		if len(w.dm(dcPatientC)) != 0 {
			t.Fatalf("patient C already has messages")
		}
		nB := len(w.dm(dcPatientB))
		w.clk.Add(24*time.Hour + time.Minute)
		w.run.Service.Wake()
		ci := w.next(t, w.fake.DMChannel(dcPatientC), 0, "about a day since your session")
		if len(ci.Buttons) != 3 {
			t.Errorf("check-in buttons = %+v", ci.Buttons)
		}
		opened := false
		for _, r := range w.fake.Requests() {
			if r.Method == "POST" && strings.HasSuffix(r.Path, "/users/@me/channels") && strings.Contains(string(r.Body), dcPatientC) {
				opened = true
			}
		}
		if !opened {
			t.Errorf("the DM with patient C was not opened by the check-in")
		}
		// The patient answers by button; STOPped patient B gets nothing.
		w.press(t, dcPatientC, ci, "Better")
		w.next(t, w.fake.DMChannel(dcPatientC), 1, "How sore")
		if !w.settle(w.fake.DMChannel(dcPatientB), nB) {
			t.Errorf("a stopped patient got a check-in")
		}
	})

	if t.Failed() {
		t.Logf("messages: %+v\nlogs:\n%s", w.fake.Messages(), w.logs.String())
		return
	}
	for _, secret := range []string{"shortness of breath", "can I lift", "Patient " + dcPatientA} {
		if strings.Contains(w.logs.String(), secret) {
			t.Errorf("the logs contain %q", secret)
		}
	}
}

// TestDiscordLoginGivesADeskLink: /staff login in the Discord staff
// channel gives a configured staff member a one-time desk link, by direct
// message only, that signs them in; the channel sees no link, only a line
// saying it was sent privately, and the interaction's ephemeral answer
// says it comes by DM. A member with only the staff role, not listed,
// gets none. A member whose DMs are closed (50007) gets no link anywhere:
// it is dropped, not retried in the channel, and the channel is told how
// to get one.
func TestDiscordLoginGivesADeskLink(t *testing.T) {
	w := startDiscordMainWith(t, func(c *Config) {
		c.Discord.StaffUserIDs = []string{dcNurse, dcDoctor}
		c.Web = WebConfig{Listen: "127.0.0.1:0", StaffNames: map[string]string{"discord:" + dcNurse: "Nurse Kim", "discord:" + dcDoctor: "Dr Lee"}}
	})
	noLinkInChannel := func() {
		t.Helper()
		for _, m := range w.fake.MessagesIn(dcStaffCh) {
			if strings.Contains(m.Content, "login?t=") || strings.Contains(m.Content, `login\?t=`) {
				t.Fatalf("a sign-in link was posted in the staff channel: %q", m.Content)
			}
		}
	}
	n := len(w.fake.MessagesIn(dcStaffCh))
	w.fake.Slash(dcGuild, dcStaffCh, dcStranger, []string{dcStaffRole}, "staff", map[string]string{"command": "login"})
	w.next(t, dcStaffCh, n, "only staff listed in the configuration")
	n = len(w.fake.MessagesIn(dcStaffCh))
	id := w.fake.Slash(dcGuild, dcStaffCh, dcNurse, []string{dcStaffRole}, "staff", map[string]string{"command": "login"})
	msg := w.next(t, w.fake.DMChannel(dcNurse), 0, "/login?t=")
	w.next(t, dcStaffCh, n, "discord:"+dcNurse+" sent to them in a private chat")
	noLinkInChannel()
	if cb, ok := w.fake.Callback(id); !ok || cb.Flags&64 == 0 || !strings.Contains(cb.Content, "direct message") {
		t.Errorf("the /staff login interaction was answered %+v (found %v), want an ephemeral line about the DM", cb, ok)
	}
	link := regexp.MustCompile(`https?://[^\s<>]+/login\?t=[A-Za-z0-9_\\-]+`).FindString(msg.Content)
	link = strings.ReplaceAll(link, `\_`, "_") // in case of markdown escaping
	link = strings.ReplaceAll(link, `\-`, "-")
	if link == "" {
		t.Fatalf("no link in %q", msg.Content)
	}
	if body := deskSignIn(t, w.run.WebAddr, link); !strings.Contains(body, "Nurse Kim") {
		t.Fatalf("signed in page does not name the nurse:\n%s", body)
	}

	// DMs closed: the link is dropped and the channel told how to get one.
	w.fake.CloseDMs(dcDoctor)
	n = len(w.fake.MessagesIn(dcStaffCh))
	w.fake.Slash(dcGuild, dcStaffCh, dcDoctor, []string{dcStaffRole}, "staff", map[string]string{"command": "login"})
	w.next(t, dcStaffCh, n, "discord:"+dcDoctor+" not sent")
	noLinkInChannel()
	for _, m := range w.fake.Messages() {
		if strings.Contains(m.Content, "login?t=") && m.ChannelID != w.fake.DMChannel(dcNurse) {
			t.Errorf("a sign-in link went to channel %s: %q", m.ChannelID, m.Content)
		}
	}
	if _, err := w.run.DB.PatientRecord(dcPatient(dcDoctor)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the refused DM made a patient record for the staff member (err %v)", err)
	}
	if _, tok, _ := strings.Cut(link, "t="); tok == "" || strings.Contains(w.logs.String(), tok) {
		t.Errorf("the sign-in token %q is missing or in the logs", tok)
	}
}
