package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/bot/telegram"
	"github.com/aftercare-clinic/aftercare/bot/telegram/telegramtest"
	"github.com/aftercare-clinic/aftercare/clock"
	"github.com/aftercare-clinic/aftercare/engine"
)

// The Telegram end-to-end tests run the real Main (store, engine, service,
// dispatcher, scheduler, telegram adapter with the real telegram-bot-api/v5
// client) against telegram-test-api, a Bot API emulator maintained by
// someone else, on a fake clock. A proxy between bot and emulator injects
// 429, 5xx and 403 answers and gives getUpdates Telegram's offset semantics
// (see package telegramtest for the emulator's quirks). They need Node.js
// and npm, and fail without them.

const (
	tgToken = "7012345678:AAFmainE2eToken_abcdefghijklmnopqrst"
	tgStaff = int64(-1009000)
)

var (
	tgNurse   = telegramtest.User{ID: 70, FirstName: "Nurse"}
	tgStaffCh = telegramtest.Chat{ID: tgStaff, Type: "supergroup", Title: "Clinic staff"}
)

func tgUser(id int64) telegramtest.User {
	return telegramtest.User{ID: id, FirstName: "_x*", LastName: fmt.Sprint(id)}
}

// tgWorld is the emulator, the proxy and one running Main; restart replaces
// the Main and keeps the rest (database, clock, emulator).
type tgWorld struct {
	t       *testing.T
	emu     *telegramtest.Emulator
	proxy   *telegramtest.Proxy
	client  *telegramtest.Client
	clk     *clock.Fake
	dataDir string
	logs    *lockedBuffer
	run     *Running
	stop    func()
	// seen counts the messages read so far per chat, for next.
	msgs map[int64][]telegramtest.BotMessage
	// configure, when set, changes each Main's configuration (the desk's
	// browser test turns the desk on).
	configure func(*Config)
}

func startTelegramWorld(t *testing.T) *tgWorld { return startTelegramWorldWith(t, nil) }

func startTelegramWorldWith(t *testing.T, configure func(*Config)) *tgWorld {
	t.Helper()
	emu := telegramtest.StartEmulator(t)
	w := &tgWorld{configure: configure,
		t: t, emu: emu, proxy: telegramtest.NewProxy(t, emu), client: telegramtest.NewClient(emu.URL, tgToken),
		clk:     clock.NewFake(time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)),
		dataDir: t.TempDir(), logs: &lockedBuffer{}, msgs: map[int64][]telegramtest.BotMessage{},
	}
	w.start()
	t.Cleanup(func() {
		w.stop()
		if strings.Contains(w.logs.String(), tgToken) {
			t.Errorf("the Telegram token appears in the logs")
		}
	})
	return w
}

// start runs a new Main on the world's database.
func (w *tgWorld) start() {
	t := w.t
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDir = w.dataDir
	cfg.Log.Level = "debug" // the privacy checks cover debug lines too
	off := false
	cfg.Console = &off
	cfg.Telegram = &telegram.Config{
		APIEndpoint:  w.proxy.Endpoint(),
		StaffChatID:  tgStaff,
		PollInterval: telegram.Duration(20 * time.Millisecond),
		PollTimeout:  telegram.Duration(time.Second),
	}
	if w.configure != nil {
		w.configure(&cfg)
	}
	m := &Main{
		Config: &cfg, Clock: w.clk, Stderr: w.logs,
		Getenv: func(k string) string {
			if k == EnvTelegramToken {
				return tgToken
			}
			return ""
		},
	}
	w.run, w.stop = startMain(t, m, w.logs)
}

func (w *tgWorld) restart() {
	w.stop()
	w.start()
}

// read collects the bot's new messages to a chat.
func (w *tgWorld) read(chat int64) []telegramtest.BotMessage {
	ms, err := w.client.Messages(context.Background(), chat)
	if err != nil {
		w.t.Fatalf("reading chat %d: %v", chat, err)
	}
	w.msgs[chat] = append(w.msgs[chat], ms...)
	return w.msgs[chat]
}

// count returns how many messages the bot sent to a chat so far.
func (w *tgWorld) count(chat int64) int { return len(w.read(chat)) }

// next waits for the first message after the first `after` in chat that
// contains want.
func (w *tgWorld) next(t *testing.T, chat int64, after int, want string) telegramtest.BotMessage {
	t.Helper()
	// Two Sends that fail in every attempt, with the retry between them:
	// the most the fault subtests inject before a reply gets through.
	deadline := time.Now().Add(2 * tgStall(w.run.Config))
	for {
		ms := w.read(chat)
		for i := after; i < len(ms); i++ {
			if strings.Contains(ms[i].Text, want) {
				return ms[i]
			}
		}
		if time.Now().After(deadline) {
			var texts []string
			for _, m := range ms[min(after, len(ms)):] {
				texts = append(texts, m.Text)
			}
			t.Fatalf("chat %d: no message containing %q after #%d; got %q", chat, want, after, texts)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// settle waits a moment and reports whether chat still has n messages.
func (w *tgWorld) settle(chat int64, n int) bool {
	time.Sleep(1200 * time.Millisecond) // longer than the per-chat pacing
	return w.count(chat) == n
}

func (w *tgWorld) say(t *testing.T, u telegramtest.User, text string) {
	t.Helper()
	if err := w.client.SendMessage(context.Background(), u, u.Private(), text); err != nil {
		t.Fatal(err)
	}
}

func (w *tgWorld) command(t *testing.T, u telegramtest.User, chat telegramtest.Chat, text string) {
	t.Helper()
	if err := w.client.SendCommand(context.Background(), u, chat, text); err != nil {
		t.Fatal(err)
	}
}

// press taps the button labelled label on m and waits for the callback to
// be answered.
func (w *tgWorld) press(t *testing.T, u telegramtest.User, m telegramtest.BotMessage, label string) {
	t.Helper()
	before := w.proxy.Calls("answerCallbackQuery")
	for _, row := range m.Keyboard {
		for _, b := range row {
			if b.Text == label || b.Data == label {
				start := time.Now()
				if err := w.client.Press(context.Background(), u, u.Private(), m, b.Data); err != nil {
					t.Fatal(err)
				}
				tgEventually(t, tgStall(w.run.Config), "callback answered", func() bool { return w.proxy.Calls("answerCallbackQuery") > before })
				// How fast is for the load command to measure; a timed
				// assertion here would fail on a busy machine.
				if d := time.Since(start); d > time.Second {
					t.Logf("callback answered after %s", d)
				}
				return
			}
		}
	}
	t.Fatalf("no button %q on %q (keyboard %+v)", label, m.Text, m.Keyboard)
}

func tgEventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func tgPatient(id int64) engine.PatientID { return telegram.PatientID(id) }
func TestTelegramEndToEnd(t *testing.T) {
	w := startTelegramWorld(t)
	ctx := context.Background()
	a, b, c, d := tgUser(5001), tgUser(5002), tgUser(5003), tgUser(5004)

	// enroll links a patient to a visit with a deep link and consents to
	// check-ins with the button.
	enroll := func(t *testing.T, u telegramtest.User, area string) {
		t.Helper()
		inv, err := w.run.Service.CreateInvite(ctx, engine.Visit{At: w.clk.Now(), Treatment: engine.DryNeedling, Area: area}, 0)
		if err != nil {
			t.Fatal(err)
		}
		n := w.count(u.ID)
		w.command(t, u, u.Private(), "/start "+inv.Token)
		q := w.next(t, u.ID, n, "Is it OK if I send you two short check-ins")
		n = w.count(u.ID)
		w.press(t, u, q, "yes")
		w.next(t, u.ID, n, "all set")
	}

	t.Run("enrollment with a deep link", func(t *testing.T) {
		enroll(t, a, "lower back")
		if w.read(a.ID)[0].ParseMode != "" {
			t.Errorf("parse_mode = %q, want plain text", w.read(a.ID)[0].ParseMode)
		}
		n := w.count(b.ID)
		w.command(t, b, b.Private(), "/start expired_or_unknown-1")
		w.next(t, b.ID, n, "That link didn't work")
	})

	t.Run("readiness questions with buttons", func(t *testing.T) {
		n := w.count(a.ID)
		w.say(t, a, "can I lift tonight?")
		q := w.next(t, a.ID, n, "How is your energy")
		if len(q.Choices()) != 4 {
			t.Fatalf("energy question choices = %v", q.Choices())
		}
		energy := q
		for _, step := range []struct{ press, next string }{
			{"Energized", "Gently move"},
			{"Smoother than before", "dizziness"},
			{"None", "your pain is"},
			{"Better", "Light activity"},
		} {
			n = w.count(a.ID)
			w.press(t, a, q, step.press)
			q = w.next(t, a.ID, n, step.next)
		}
		if len(q.Keyboard) != 0 {
			t.Errorf("advice has buttons: %+v", q.Keyboard)
		}
		if !w.settle(a.ID, n+1) {
			t.Errorf("extra messages after the advice")
		}
		// The pressed button was acknowledged on the question itself.
		hist, err := w.client.BotHistory(ctx)
		if err != nil {
			t.Fatal(err)
		}
		acked := false
		for _, m := range hist {
			if m.MessageID == energy.MessageID && strings.HasSuffix(m.Text, "✓ Energized") {
				acked = true
			}
		}
		if !acked {
			t.Errorf("the energy question was not marked with the pressed answer")
		}
	})

	t.Run("red flag reaches the staff chat", func(t *testing.T) {
		n := w.count(a.ID)
		staffN := w.count(tgStaff)
		w.say(t, a, "shortness of breath and chest pain")
		w.next(t, a.ID, n, "Call 911 now")
		alert := w.next(t, tgStaff, staffN, "[EMERGENCY]")
		for _, want := range []string{"telegram:5001", "chest pain"} {
			if !strings.Contains(alert.Text, want) {
				t.Errorf("alert %q lacks %q", alert.Text, want)
			}
		}
		// Staff commands: answered in the staff chat, refused elsewhere.
		staffN = w.count(tgStaff)
		w.command(t, tgNurse, tgStaffCh, "/ack 1")
		w.next(t, tgStaff, staffN, "acknowledged by telegram:70")
		n = w.count(a.ID)
		w.command(t, a, a.Private(), "/ack 1")
		w.next(t, a.ID, n, "only for clinic staff")
	})

	t.Run("STOP", func(t *testing.T) {
		enroll(t, b, "neck")
		n := w.count(b.ID)
		w.say(t, b, "STOP")
		w.next(t, b.ID, n, "stopped automatic messages")
	})

	t.Run("429 and 5xx lose nothing and double nothing", func(t *testing.T) {
		n := w.count(a.ID)
		w.proxy.Inject("sendMessage", telegramtest.Fault429(1), telegramtest.Fault500(), telegramtest.Fault500(),
			telegramtest.Fault500(), telegramtest.Fault502HTML(), telegramtest.FaultDrop())
		w.say(t, a, "should I put ice on it?")
		w.next(t, a.ID, n, "Heat, not ice")
		if !w.settle(a.ID, n+1) {
			t.Errorf("%d messages for one reply under send faults", w.count(a.ID)-n)
		}
		n++
		w.proxy.Inject("getUpdates", telegramtest.Fault500(), telegramtest.FaultDrop(), telegramtest.Fault429(1), telegramtest.Fault502HTML())
		w.say(t, a, "thanks!")
		w.next(t, a.ID, n, "You're welcome")
		if !w.settle(a.ID, n+1) {
			t.Errorf("%d messages for one reply under getUpdates faults", w.count(a.ID)-n)
		}
	})

	t.Run("restart mid-conversation loses nothing and answers nothing twice", func(t *testing.T) {
		n := w.count(a.ID)
		w.say(t, a, "can I lift tonight?")
		q := w.next(t, a.ID, n, "How is your energy")
		// From here on no getUpdates confirmation reaches "Telegram", as
		// if the process died before confirming: the next process gets
		// every update again.
		w.proxy.IgnoreOffsets(true)
		n = w.count(a.ID)
		w.press(t, a, q, "Energized")
		q = w.next(t, a.ID, n, "Gently move")
		if !w.settle(a.ID, n+1) {
			t.Fatalf("extra messages before the restart")
		}
		w.stop()
		w.proxy.IgnoreOffsets(false)
		n = w.count(a.ID)
		w.say(t, a, "thanks!") // written while the bot is down
		// Counted before the start: the new process may skip the
		// redelivered press before this line would otherwise run.
		skippedBefore := strings.Count(w.logs.String(), "step skipped (already applied)")
		w.start()
		w.next(t, a.ID, n, "You're welcome")
		// The answer, then the open question asked again; nothing for the
		// press that was committed before the restart and delivered again.
		w.next(t, a.ID, n+1, "Back to my question: Gently move")
		if !w.settle(a.ID, n+2) {
			var texts []string
			for _, m := range w.read(a.ID)[n:] {
				texts = append(texts, m.Text)
			}
			t.Fatalf("after the restart the bot sent %q, want only the answer to the message written while it was down and the re-asked question", texts)
		}
		if strings.Count(w.logs.String(), "step skipped (already applied)") == skippedBefore {
			t.Errorf("no update was delivered twice: the restart did not exercise deduplication")
		}
		// The conversation goes on from the question asked before the restart.
		n = w.count(a.ID)
		w.press(t, a, q, "Smoother than before")
		w.next(t, a.ID, n, "dizziness")
	})

	t.Run("24 h check-in", func(t *testing.T) {
		enroll(t, c, "shoulder")
		nB, nC := w.count(b.ID), w.count(c.ID)
		w.clk.Add(24*time.Hour + time.Minute)
		w.run.Service.Wake()
		ci := w.next(t, c.ID, nC, "about a day since your session")
		if len(ci.Choices()) != 3 {
			t.Errorf("check-in choices = %v", ci.Choices())
		}
		n := w.count(c.ID)
		w.press(t, c, ci, "Better")
		w.next(t, c.ID, n, "How sore")
		if !w.settle(b.ID, nB) {
			t.Errorf("a stopped patient got a check-in")
		}
	})

	t.Run("blocked patient", func(t *testing.T) {
		enroll(t, d, "hip")
		w.proxy.Block(d.ID)
		n := w.count(d.ID)
		staffN := w.count(tgStaff)
		w.say(t, d, "hello")
		notice := w.next(t, tgStaff, staffN, "telegram:5004")
		if !strings.Contains(notice.Text, "can no longer be reached") || strings.Contains(notice.Text, "hello") {
			t.Errorf("notice = %q", notice.Text)
		}
		if w.count(d.ID) != n {
			t.Errorf("a message reached a chat that blocked the bot")
		}
	})

	if t.Failed() {
		return
	}
	for _, secret := range []string{"shortness of breath", "can I lift", "_x*", "should I put ice"} {
		if strings.Contains(w.logs.String(), secret) {
			t.Errorf("the logs contain %q", secret)
		}
	}
}

// tgStall is the longest the Telegram pipeline of a running Main may go
// without delivering anything while messages are queued and the machine,
// however slow, still runs it: one Send whose every attempt times out
// (request_timeout × (send_retries+1), plus the backoffs between them),
// then the dispatcher's first retry backoff (at most a second) and one
// per-chat pace slot. Waits that poll for deliveries fail only after a
// stall this long, never after a guessed total time, so a busy machine
// makes them slower but not flaky.
func tgStall(c Config) time.Duration {
	timeout, retries := time.Duration(c.Telegram.RequestTimeout), c.Telegram.SendRetries
	if timeout <= 0 {
		timeout = telegram.DefaultRequestTimeout
	}
	if retries == 0 {
		retries = telegram.DefaultSendRetries
	}
	retries = max(retries, 0)
	inner := time.Duration(250*((1<<retries)-1)) * time.Millisecond
	pace := defaultPace[telegram.PlatformName]
	slot := time.Duration(float64(time.Second) / pace.PerChatPerSecond)
	return timeout*time.Duration(retries+1) + inner + time.Second + slot
}

// waitDeliveries polls until done reports true. It fails the test only
// when progress (a count of deliveries) stood still for longer than stall.
func waitDeliveries(t testing.TB, what string, stall time.Duration, done func() (bool, int)) {
	t.Helper()
	last, since := -1, time.Now()
	for {
		ok, n := done()
		if ok {
			return
		}
		if n != last {
			last, since = n, time.Now()
		} else if time.Since(since) > stall {
			t.Fatalf("waiting for %s: no delivery for %s (longer than the slowest failing send the config allows; %d delivered)", what, stall, n)
		}
		time.Sleep(100 * time.Millisecond) // a poll interval, not a deadline
	}
}

// TestTelegramCheckinBurst measures the send rate with the default pacing
// when 1,000 check-ins fall due at once, checks each patient gets exactly
// one, and measures how long an emergency waits behind the burst.
// Deliveries are counted where they land, in the emulator (a retried
// attempt seen by the proxy is not a duplicate); waits follow deliveries,
// with no wall-clock total, so a loaded machine only makes it slower.
func TestTelegramCheckinBurst(t *testing.T) {
	w := startTelegramWorld(t)
	ctx := context.Background()
	const n = 1000
	first := int64(100000)
	for i := int64(0); i < n; i++ {
		v := engine.Visit{At: w.clk.Now(), Treatment: engine.Acupuncture, Area: "shoulder", Source: "clinic", Consent: true}
		if err := w.run.Service.RecordVisit(ctx, tgPatient(first+i), v); err != nil {
			t.Fatal(err)
		}
	}
	sick := tgUser(first + n)
	if err := w.run.Service.RecordVisit(ctx, tgPatient(sick.ID), engine.Visit{At: w.clk.Now(), Treatment: engine.Acupuncture, Area: "chest", Source: "clinic", Consent: true}); err != nil {
		t.Fatal(err)
	}
	stall := tgStall(w.run.Config)
	// delivered returns the bot's messages the emulator stored since the
	// burst began, in the order it stored them.
	var lastBefore int
	if hist, err := w.client.BotHistory(ctx); err != nil {
		t.Fatal(err)
	} else {
		for _, m := range hist {
			lastBefore = max(lastBefore, m.MessageID)
		}
	}
	delivered := func() []telegramtest.BotMessage {
		hist, err := w.client.BotHistory(ctx)
		if err != nil {
			t.Fatalf("reading the emulator's history: %v", err)
		}
		var out []telegramtest.BotMessage
		for _, m := range hist {
			if m.MessageID > lastBefore {
				out = append(out, m)
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i].MessageID < out[j].MessageID })
		return out
	}
	isCheckin := func(m telegramtest.BotMessage) bool {
		return strings.Contains(m.Text, "about a day since your session")
	}
	checkins := func(ms []telegramtest.BotMessage) int {
		c := 0
		for _, m := range ms {
			if isCheckin(m) {
				c++
			}
		}
		return c
	}
	attemptsBefore := w.proxy.Calls("sendMessage")
	w.clk.Add(24*time.Hour + time.Minute)
	w.run.Service.Wake()

	// Mid-burst, a patient reports an emergency: the answer and the staff
	// alert must not wait behind the queued check-ins.
	waitDeliveries(t, "100 check-ins delivered", stall, func() (bool, int) {
		ms := delivered()
		return checkins(ms) >= 100, len(ms)
	})
	reported := time.Now()
	w.say(t, sick, "chest pain and I can't breathe")
	var escalated, alerted time.Duration
	var gotEscalation, gotAlert bool
	queued := 0
	waitDeliveries(t, "escalation and alert delivered", stall, func() (bool, int) {
		ms := delivered()
		for _, m := range ms {
			if !gotEscalation && m.ChatID == sick.ID && strings.Contains(m.Text, "Call 911 now") {
				escalated, gotEscalation = m.At.Sub(reported), true
			}
			if !gotAlert && m.ChatID == tgStaff && strings.Contains(m.Text, "[EMERGENCY]") {
				alerted, gotAlert = m.At.Sub(reported), true
			}
		}
		queued = n + 1 - checkins(ms)
		return gotEscalation && gotAlert, len(ms)
	})
	t.Logf("emergency reported mid-burst: patient answered after %s, staff alerted after %s (about %d check-ins still queued then)",
		escalated.Round(time.Millisecond), alerted.Round(time.Millisecond), queued)

	// Drained: every check-in delivered and nothing left in the outbox
	// (a message in flight is still in it). Stopping the bot then makes
	// the emulator's record final, with no settling sleep.
	waitDeliveries(t, "the outbox to drain", stall, func() (bool, int) {
		ms := delivered()
		depth, err := w.run.Store.OutboxDepth()
		if err != nil {
			t.Fatal(err)
		}
		return checkins(ms) >= n+1 && depth == 0, len(ms)
	})
	w.stop()
	all := delivered()
	attempts := w.proxy.Calls("sendMessage") - attemptsBefore
	perChat := map[int64]int{}
	for _, m := range all {
		if isCheckin(m) {
			perChat[m.ChatID]++
		}
	}
	for i := int64(0); i <= n; i++ {
		if c := perChat[first+i]; c != 1 {
			t.Errorf("patient %d got %d check-ins, want 1 (%d send attempts for %d deliveries)", first+i, c, attempts, len(all))
		}
	}
	// Rate over the whole burst, and the busiest one-second window, at the
	// emulator. The dispatcher takes a token of the global limiter before
	// each send and sends one message at a time, so of the messages stored
	// in any second all but the first took their token within that second:
	// at most 1 + burst + rate of them. A send that failed may be retried
	// by the adapter at once without a new token, so each failed attempt
	// (attempts the proxy saw beyond the deliveries) allows one more.
	pace := defaultPace[telegram.PlatformName]
	unpaced := max(0, attempts-len(all))
	span := all[len(all)-1].At.Sub(all[0].At)
	rate := float64(len(all)-1) / span.Seconds()
	busiest := 0
	for i, j := 0, 0; i < len(all); i++ {
		for all[i].At.Sub(all[j].At) >= time.Second {
			j++
		}
		busiest = max(busiest, i-j+1)
	}
	t.Logf("burst of %d check-ins (+ escalation, alert, replies): %d delivered (%d send attempts) in %s = %.1f msg/s; busiest 1 s window %d messages",
		n+1, len(all), attempts, span.Round(time.Millisecond), rate, busiest)
	maxBusiest := 1 + pace.Burst() + int(pace.PerSecond) + unpaced
	maxRate := pace.PerSecond + float64(1+pace.Burst()+unpaced)/span.Seconds()
	if busiest > maxBusiest || rate > maxRate {
		t.Errorf("sent faster than Telegram allows: %.1f msg/s (limit %.1f), busiest second %d (limit %d)", rate, maxRate, busiest, maxBusiest)
	}
	// How fast the burst drained is a figure for the log only: under -race
	// and on a busy machine the commits, not the pacing, bound it, and the
	// load command, not this test, measures it.
}
