package telegram

// End-to-end tests of the adapter against telegram-test-api, a Bot API
// emulator maintained by someone else, with the real telegram-bot-api/v5
// client talking HTTP to it through a fault-injecting proxy. They need Node.js
// and npm (see telegramtest); they fail, not skip, without them.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/bot/telegram/telegramtest"
	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"
)

// e2eToken has the shape of a real token.
const e2eToken = "7012345678:AAFe2eTestToken_abcdefghijklmnopqrstu"

var (
	patient    = telegramtest.User{ID: 1001, FirstName: "_x*", LastName: "[Smith]", Username: "pat"}
	patient2   = telegramtest.User{ID: 1002, FirstName: "Bo"}
	nurse      = telegramtest.User{ID: 7, FirstName: "Nurse"}
	staffGroup = telegramtest.Chat{ID: -100500, Type: "supergroup", Title: "Clinic staff"}
	otherGroup = telegramtest.Chat{ID: -100600, Type: "group", Title: "Yoga class"}
)

type e2e struct {
	emu    *telegramtest.Emulator
	proxy  *telegramtest.Proxy
	client *telegramtest.Client
	rec    *recorder
	logs   *logBuffer
}

func startE2E(t *testing.T) *e2e {
	t.Helper()
	emu := telegramtest.StartEmulator(t)
	e := &e2e{
		emu:    emu,
		proxy:  telegramtest.NewProxy(t, emu),
		client: telegramtest.NewClient(emu.URL, e2eToken),
		rec:    newRecorder(),
		logs:   &logBuffer{},
	}
	t.Cleanup(func() {
		assertNoToken(t, "logs", e.logs.String(), e2eToken)
		for _, private := range []string{"_x*", "[Smith]", "sore", "dizzy"} {
			if strings.Contains(e.logs.String(), private) {
				t.Errorf("logs contain patient data %q", private)
			}
		}
	})
	return e
}

func (e *e2e) config() Config {
	return Config{
		APIEndpoint:  e.proxy.Endpoint(),
		StaffChatID:  staffGroup.ID,
		PollInterval: Duration(20 * time.Millisecond),
		PollTimeout:  Duration(time.Second),
	}
}

// run starts a Bot and returns it with a function that stops it and waits.
func (e *e2e) run(t *testing.T, cfg Config) (*Bot, func()) {
	t.Helper()
	b := newTestBotWithToken(t, cfg, e2eToken, e.rec, e.logs)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
	}
	t.Cleanup(stop)
	return b, stop
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestE2EConversation(t *testing.T) {
	e := startE2E(t)
	b, _ := e.run(t, e.config())
	ctx := ctxT(t)
	pc := patient.Private()

	// Free text.
	if err := e.client.SendMessage(ctx, patient, pc, "my arm is sore"); err != nil {
		t.Fatal(err)
	}
	in := e.rec.waitInbound(t, 1)
	if in[0].Patient != "telegram:1001" || in[0].Text != "my arm is sore" || in[0].DisplayName != "_x* [Smith]" ||
		in[0].Choice != "" || !strings.HasPrefix(in[0].DedupeKey, "telegram:update:") {
		t.Fatalf("inbound = %+v", in[0])
	}

	// Deep link, sent as a command with its bot_command entity.
	if err := e.client.SendCommand(ctx, patient, pc, "/start visit_ABC-123"); err != nil {
		t.Fatal(err)
	}
	in = e.rec.waitInbound(t, 2)
	if in[1].Text != "/start visit_ABC-123" || in[1].Patient != "telegram:1001" {
		t.Fatalf("deep link inbound = %+v", in[1])
	}

	// A question with buttons; the name with Markdown characters arrives as typed.
	question := "Hi _x* [Smith], before your session: are you feeling well today?"
	err := b.Send(ctx, engine.Outbound{ID: 1, To: "telegram:1001", Kind: engine.KindReply, Text: question,
		Choices: []engine.Choice{{ID: "ready:yes", Label: "Yes"}, {ID: "ready:no", Label: "No"}, {ID: "ready:unsure", Label: "Not sure"}}})
	if err != nil {
		t.Fatal(err)
	}
	got := e.client.WaitMessages(t, patient.ID, 1, 5*time.Second)
	if len(got) != 1 || got[0].Text != question || got[0].ParseMode != "" {
		t.Fatalf("patient saw %+v", got)
	}
	if len(got[0].Keyboard) != 1 || strings.Join(got[0].Choices(), ",") != "ready:yes,ready:no,ready:unsure" || got[0].Keyboard[0][2].Text != "Not sure" {
		t.Fatalf("keyboard = %+v", got[0].Keyboard)
	}

	// The patient presses "Yes".
	answersBefore := e.proxy.Calls("answerCallbackQuery")
	if err := e.client.Press(ctx, patient, pc, got[0], "ready:yes"); err != nil {
		t.Fatal(err)
	}
	in = e.rec.waitInbound(t, 3)
	if in[2].Choice != "ready:yes" || in[2].Text != "Yes" || in[2].Patient != "telegram:1001" {
		t.Fatalf("button inbound = %+v", in[2])
	}
	if e.proxy.Calls("answerCallbackQuery") != answersBefore+1 {
		t.Fatalf("answerCallbackQuery calls = %d, want %d", e.proxy.Calls("answerCallbackQuery"), answersBefore+1)
	}
	waitFor(t, "the pressed button acknowledged", func() bool {
		hist, err := e.client.BotHistory(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range hist {
			if m.MessageID == got[0].MessageID {
				return m.Text == question+"\n\n✓ Yes"
			}
		}
		return false
	})

	// A sticker reaches the engine as empty text; a photo's caption is read.
	if err := e.client.SendRaw(ctx, patient, pc, map[string]any{"sticker": map[string]any{"file_id": "s1", "file_unique_id": "u1", "width": 512, "height": 512}}); err != nil {
		t.Fatal(err)
	}
	in = e.rec.waitInbound(t, 4)
	if in[3].Text != "" || in[3].Patient != "telegram:1001" {
		t.Fatalf("sticker inbound = %+v", in[3])
	}
	if err := e.client.SendRaw(ctx, patient, pc, map[string]any{"caption": "it looks red and I feel dizzy", "photo": []map[string]any{{"file_id": "p1", "file_unique_id": "u2", "width": 1, "height": 1}}}); err != nil {
		t.Fatal(err)
	}
	in = e.rec.waitInbound(t, 5)
	if in[4].Text != "it looks red and I feel dizzy" {
		t.Fatalf("photo inbound = %+v", in[4])
	}

	// A staff command from a patient is refused politely and goes nowhere.
	if err := e.client.SendCommand(ctx, patient, pc, "/ack 12"); err != nil {
		t.Fatal(err)
	}
	refusal := e.client.WaitMessages(t, patient.ID, 1, 5*time.Second)
	if refusal[0].Text != refusalText {
		t.Fatalf("refusal = %q", refusal[0].Text)
	}

	// The staff chat reaches ReceiveStaff.
	if err := e.client.SendCommand(ctx, nurse, staffGroup, "/ack 12"); err != nil {
		t.Fatal(err)
	}
	st := e.rec.waitStaff(t, 1)
	if st[0].Staff != "telegram:7" || st[0].Channel != "telegram:-100500" || st[0].Text != "/ack 12" {
		t.Fatalf("staff inbound = %+v", st[0])
	}

	// Another group is ignored.
	if err := e.client.SendMessage(ctx, patient, otherGroup, "hello everyone"); err != nil {
		t.Fatal(err)
	}
	// A later message proves the group message was handled (and ignored) first.
	if err := e.client.SendMessage(ctx, patient2, patient2.Private(), "hello"); err != nil {
		t.Fatal(err)
	}
	in = e.rec.waitInbound(t, 6)
	if in[5].Patient != "telegram:1002" || len(in) != 6 {
		t.Fatalf("inbounds = %+v", in)
	}
	if _, st = e.rec.snapshot(); len(st) != 1 {
		t.Fatalf("staff inbounds = %+v", st)
	}
	if !strings.Contains(e.logs.String(), "message in a group that is not the staff chat") {
		t.Fatal("ignored group message not logged")
	}

	// A red-flag alert reaches the staff chat.
	alert := "URGENT: patient telegram:1001 (_x* [Smith]) wrote: \"it looks red and I feel dizzy\""
	if err := b.Send(ctx, engine.Outbound{ID: 2, To: engine.StaffAddress, Channel: "telegram:-100500", Kind: engine.KindAlert,
		Level: engine.Urgent, Patient: "telegram:1001", Text: alert, Choices: []engine.Choice{{ID: "ack:1", Label: "Acknowledge"}}}); err != nil {
		t.Fatal(err)
	}
	sm := e.client.WaitMessages(t, staffGroup.ID, 1, 5*time.Second)
	if sm[0].Text != alert || strings.Join(sm[0].Choices(), ",") != "ack:1" {
		t.Fatalf("staff saw %+v", sm[0])
	}
	// Staff press the button in the group: ReceiveStaff with the choice.
	if err := e.client.Press(ctx, nurse, staffGroup, sm[0], "ack:1"); err != nil {
		t.Fatal(err)
	}
	st = e.rec.waitStaff(t, 2)
	if st[1].Choice != "ack:1" || st[1].Text != "Acknowledge" || st[1].Staff != "telegram:7" {
		t.Fatalf("staff press = %+v", st[1])
	}

	// A long text arrives split, in order, complete.
	long := strings.Repeat("Drink water and rest. ", 200) + "\n\n" + strings.Repeat("Call us if anything worries you. ", 150)
	if err := b.Send(ctx, engine.Outbound{ID: 3, To: "telegram:1001", Kind: engine.KindCheckin, Text: long}); err != nil {
		t.Fatal(err)
	}
	parts := e.client.WaitMessages(t, patient.ID, 2, 5*time.Second)
	var joined strings.Builder
	for _, p := range parts {
		joined.WriteString(p.Text)
	}
	if len(parts) != 3 || joined.String() != long {
		t.Fatalf("got %d parts; joined text matches: %v", len(parts), joined.String() == long)
	}
}

// Unsupported or failing acknowledgement calls (the emulator answers 500 for
// methods it lacks) never lose the press.
func TestE2ECallbackAcknowledgementFailures(t *testing.T) {
	e := startE2E(t)
	b, _ := e.run(t, e.config())
	ctx := ctxT(t)
	if err := b.Send(ctx, engine.Outbound{To: "telegram:1001", Kind: engine.KindCheckin, Text: "How is the soreness?",
		Choices: []engine.Choice{{ID: "better", Label: "Better"}, {ID: "worse", Label: "Worse"}}}); err != nil {
		t.Fatal(err)
	}
	m := e.client.WaitMessages(t, patient.ID, 1, 5*time.Second)[0]
	e.proxy.Inject("answerCallbackQuery", telegramtest.Fault500())
	e.proxy.Inject("editMessageText", telegramtest.Fault502HTML())
	if err := e.client.Press(ctx, patient, patient.Private(), m, "worse"); err != nil {
		t.Fatal(err)
	}
	in := e.rec.waitInbound(t, 1)
	if in[0].Choice != "worse" || in[0].Text != "Worse" {
		t.Fatalf("inbound = %+v", in[0])
	}
	waitFor(t, "failures logged", func() bool {
		l := e.logs.String()
		return strings.Contains(l, "answerCallbackQuery failed") && strings.Contains(l, "acknowledging the pressed button failed")
	})
}

// A Bot restarted mid-conversation neither loses nor doubles an update: the
// offset moves only after Receive committed, and what a crashed Bot had
// fetched but not committed comes again.
func TestE2ERestart(t *testing.T) {
	for _, crash := range []bool{false, true} {
		name := "graceful"
		if crash {
			name = "crash"
		}
		t.Run(name, func(t *testing.T) {
			e := startE2E(t)
			ctx := ctxT(t)
			pc := patient.Private()
			// Three messages wait before the first Bot starts, so it fetches
			// them in one batch. The store fails on everything after the
			// first while the first Bot runs.
			for _, text := range []string{"m1", "m2", "m3"} {
				if err := e.client.SendMessage(ctx, patient, pc, text); err != nil {
					t.Fatal(err)
				}
			}
			broken := true
			m1Key := ""
			e.rec.fail = func(key string) error { // called with e.rec.mu held
				if m1Key == "" {
					m1Key = key
				}
				if broken && key != m1Key {
					return errors.New("disk full")
				}
				return nil
			}
			b1, stop1 := e.run(t, e.config())
			b1.mu.Lock()
			b1.confirmOnStop = !crash
			b1.mu.Unlock()
			in := e.rec.waitInbound(t, 1)
			if in[0].Text != "m1" {
				t.Fatalf("first committed = %+v", in[0])
			}
			var m2Key string
			waitFor(t, "m2 to fail", func() bool {
				e.rec.mu.Lock()
				defer e.rec.mu.Unlock()
				for _, k := range e.rec.calls {
					if k != m1Key {
						m2Key = k
						return true
					}
				}
				return false
			})
			waitFor(t, "m2 retried", func() bool { return e.rec.callCount(m2Key) >= 3 })
			stop1()
			if got, _ := e.rec.snapshot(); len(got) != 1 {
				t.Fatalf("committed before restart: %+v", got)
			}

			e.rec.mu.Lock()
			broken = false
			e.rec.mu.Unlock()
			e.run(t, e.config())
			in = e.rec.waitInbound(t, 3)
			time.Sleep(200 * time.Millisecond) // let any redelivery show up
			in, _ = e.rec.snapshot()
			var texts []string
			for _, x := range in {
				texts = append(texts, x.Text)
			}
			if strings.Join(texts, ",") != "m1,m2,m3" {
				t.Fatalf("committed %v, want m1,m2,m3 exactly once each, in order", texts)
			}
			// m1 was committed but, being in the same batch as m2, never
			// confirmed by a later getUpdates. A graceful stop confirms it;
			// after a crash it comes again and the Receiver's dedupe
			// absorbs it.
			wantM1 := 1
			if crash {
				wantM1 = 2
			}
			if n := e.rec.callCount(m1Key); n != wantM1 {
				t.Fatalf("m1 reached Receive %d times, want %d", n, wantM1)
			}
			if n := e.proxy.PendingUpdates(); n != 0 {
				waitFor(t, "all updates confirmed", func() bool { return e.proxy.PendingUpdates() == 0 })
			}
		})
	}
}

// deliver plays the service's dispatcher: it retries after a 429's
// retry_after and after other errors, and gives up on an unreachable chat.
func deliver(ctx context.Context, b *Bot, m engine.Outbound) (retries int, err error) {
	for {
		err := b.Send(ctx, m)
		if err == nil || errors.Is(err, service.ErrUnreachable) || ctx.Err() != nil {
			return retries, err
		}
		retries++
		var ra *service.RetryAfterError
		wait := 50 * time.Millisecond
		if errors.As(err, &ra) {
			wait = ra.After
		}
		select {
		case <-ctx.Done():
			return retries, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// 429s, 5xx, HTML error pages and dropped connections, on both getUpdates
// and sendMessage, lose nothing and double nothing.
func TestE2EFaultsLoseNothing(t *testing.T) {
	e := startE2E(t)
	b, _ := e.run(t, e.config())
	ctx := ctxT(t)
	pc := patient.Private()

	// Receiving through failing getUpdates calls.
	e.proxy.Inject("getUpdates", telegramtest.Fault500(), telegramtest.Fault502HTML(), telegramtest.FaultDrop(), telegramtest.Fault429(1), telegramtest.Fault500())
	for i := 1; i <= 5; i++ {
		if err := e.client.SendMessage(ctx, patient, pc, fmt.Sprintf("in%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	in := e.rec.waitInbound(t, 5)
	time.Sleep(100 * time.Millisecond)
	in, _ = e.rec.snapshot()
	var texts []string
	for _, x := range in {
		texts = append(texts, x.Text)
	}
	if strings.Join(texts, ",") != "in1,in2,in3,in4,in5" {
		t.Fatalf("committed %v", texts)
	}
	if e.proxy.Faulted("getUpdates") != 5 {
		t.Fatalf("getUpdates faults served = %d, want 5", e.proxy.Faulted("getUpdates"))
	}

	// A 429 on send maps to RetryAfterError with the server's retry_after.
	e.proxy.Inject("sendMessage", telegramtest.Fault429(2))
	err := b.Send(ctx, engine.Outbound{ID: 50, To: "telegram:1001", Kind: engine.KindCheckin, Text: "out0"})
	var ra *service.RetryAfterError
	if !errors.As(err, &ra) || ra.After != 2*time.Second {
		t.Fatalf("Send = %v, want RetryAfterError after 2s", err)
	}
	if _, err := deliver(ctx, b, engine.Outbound{ID: 50, To: "telegram:1001", Kind: engine.KindCheckin, Text: "out0"}); err != nil {
		t.Fatal(err)
	}

	// A dispatcher-like loop through a mix of faults delivers everything once, in order.
	faults := []telegramtest.Fault{telegramtest.Fault500(), telegramtest.Fault429(1), telegramtest.FaultDrop(),
		telegramtest.Fault502HTML(), telegramtest.Fault500(), telegramtest.Fault500(), telegramtest.Fault500()}
	e.proxy.Inject("sendMessage", faults...)
	totalRetries := 0
	for i := 1; i <= 8; i++ {
		n, err := deliver(ctx, b, engine.Outbound{ID: uint64(50 + i), To: "telegram:1001", Kind: engine.KindCheckin, Text: fmt.Sprintf("out%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		totalRetries += n
	}
	got := e.client.WaitMessages(t, patient.ID, 9, 10*time.Second)
	texts = nil
	for _, m := range got {
		texts = append(texts, m.Text)
	}
	if strings.Join(texts, ",") != "out0,out1,out2,out3,out4,out5,out6,out7,out8" {
		t.Fatalf("patient got %v", texts)
	}
	if e.proxy.Faulted("sendMessage") != 1+len(faults) {
		t.Fatalf("sendMessage faults served = %d, want %d", e.proxy.Faulted("sendMessage"), 1+len(faults))
	}
	if totalRetries < 2 {
		t.Fatalf("dispatcher retries = %d; the 429 and the persistent 500s should have reached it", totalRetries)
	}
	e.client.NoMessages(t, patient.ID, 100*time.Millisecond)
}

// A patient who blocked the bot is reported unreachable at once, without
// retries, and other patients are unaffected.
func TestE2EBlockedPatient(t *testing.T) {
	e := startE2E(t)
	b, _ := e.run(t, e.config())
	ctx := ctxT(t)
	e.proxy.Block(patient.ID)
	before := e.proxy.Calls("sendMessage")
	_, err := deliver(ctx, b, engine.Outbound{ID: 1, To: "telegram:1001", Kind: engine.KindCheckin, Text: "How are you?"})
	if !errors.Is(err, service.ErrUnreachable) || !strings.Contains(err.Error(), "blocked") {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
	if n := e.proxy.Calls("sendMessage") - before; n != 1 {
		t.Fatalf("sendMessage tried %d times, want 1 (no retries for a blocked chat)", n)
	}
	if err := b.Send(ctx, engine.Outbound{ID: 2, To: "telegram:1002", Kind: engine.KindCheckin, Text: "How are you?"}); err != nil {
		t.Fatal(err)
	}
	e.client.WaitMessages(t, patient2.ID, 1, 5*time.Second)
	e.client.NoMessages(t, patient.ID, 50*time.Millisecond)
}

// Webhook mode: setWebhook registers a secret; updates relayed with it are
// handled, redeliveries are deduplicated, a failed Receive makes the
// update come again, and requests without the secret are refused.
func TestE2EWebhook(t *testing.T) {
	e := startE2E(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := e.config()
	cfg.Mode = ModeWebhook
	cfg.WebhookURL = "http://" + addr + "/telegram/webhook"
	cfg.WebhookListen = addr
	fails := 1
	e.rec.fail = func(key string) error { // called with e.rec.mu held
		// The first attempt at the second message fails.
		if fails > 0 && len(e.rec.committed) == 1 && !e.rec.committed[key] {
			fails--
			return errors.New("store busy")
		}
		return nil
	}
	e.run(t, cfg)
	waitFor(t, "setWebhook", func() bool { return e.proxy.Calls("setWebhook") == 1 })
	time.Sleep(50 * time.Millisecond)
	ctx := ctxT(t)
	e.proxy.DuplicateWebhooks(1)
	pc := patient.Private()
	for i, text := range []string{"w1", "w2", "w3"} {
		if err := e.client.SendMessage(ctx, patient, pc, text); err != nil {
			t.Fatal(err)
		}
		e.rec.waitInbound(t, i+1)
		waitFor(t, "the webhook relay", e.proxy.WebhookIdle)
	}
	in, _ := e.rec.snapshot()
	var texts []string
	for _, x := range in {
		texts = append(texts, x.Text)
	}
	if strings.Join(texts, ",") != "w1,w2,w3" {
		t.Fatalf("committed %v", texts)
	}
	e.rec.mu.Lock()
	failed := fails == 0
	e.rec.mu.Unlock()
	if !failed {
		t.Fatal("the injected Receive failure did not happen")
	}
	if n := e.rec.callCount(in[2].DedupeKey); n != 1 {
		t.Fatalf("duplicated webhook delivery reached Receive %d times, want 1", n)
	}
	if n := e.rec.callCount(in[1].DedupeKey); n != 2 {
		t.Fatalf("w2 reached Receive %d times, want 2 (one failure, one redelivery)", n)
	}

	// Without the secret: refused.
	resp, err := httpPost("http://"+addr+"/telegram/webhook", `{"update_id":999,"message":{"message_id":1,"chat":{"id":1,"type":"private"},"text":"forged"}}`)
	if err != nil {
		t.Fatal(err)
	}
	if resp != 401 {
		t.Fatalf("forged webhook: status %d, want 401", resp)
	}
	if in, _ := e.rec.snapshot(); len(in) != 3 {
		t.Fatalf("forged update reached the Receiver: %+v", in)
	}
}

func httpPost(url, body string) (int, error) {
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
