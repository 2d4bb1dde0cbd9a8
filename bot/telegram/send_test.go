package telegram

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	tgbotapi "github.com/go-telegram-bot-api/telegram-bot-api/v5"

	"github.com/aftercare-clinic/aftercare/bot/chunk"
	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"
)

var _ service.Sender = (*Bot)(nil)

func keyboardOf(t *testing.T, c apiCall) [][]tgbotapi.InlineKeyboardButton {
	t.Helper()
	raw := c.form.Get("reply_markup")
	if raw == "" {
		return nil
	}
	var kb tgbotapi.InlineKeyboardMarkup
	if err := json.Unmarshal([]byte(raw), &kb); err != nil {
		t.Fatalf("reply_markup %q: %v", raw, err)
	}
	return kb.InlineKeyboard
}

func TestSendPlainTextWithKeyboard(t *testing.T) {
	api := newFakeAPI(t, nil)
	b := newTestBot(t, Config{APIEndpoint: api.endpoint()}, nil, nil)
	text := "Hi _x*, [link](http://x) <b>bold</b> `code` \\ 😀"
	err := b.Send(context.Background(), engine.Outbound{
		ID: 1, To: "telegram:42", Kind: engine.KindReply, Text: text,
		Choices: []engine.Choice{{ID: "ready:yes", Label: "Yes"}, {ID: "ready:no", Label: "No"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	sent := api.sent("sendMessage")
	if len(sent) != 1 {
		t.Fatalf("want 1 sendMessage, got %d", len(sent))
	}
	f := sent[0].form
	if f.Get("chat_id") != "42" || f.Get("text") != text {
		t.Fatalf("sent chat %q text %q", f.Get("chat_id"), f.Get("text"))
	}
	// The library always sends entities, as "null" when there are none.
	if f.Has("parse_mode") || (f.Get("entities") != "" && f.Get("entities") != "null") {
		t.Fatalf("want plain text without parse_mode, got %v", f)
	}
	kb := keyboardOf(t, sent[0])
	if len(kb) != 1 || len(kb[0]) != 2 || *kb[0][0].CallbackData != "ready:yes" || kb[0][1].Text != "No" {
		t.Fatalf("keyboard = %+v", kb)
	}
}

func TestSendStaffChannelAndInvalidText(t *testing.T) {
	api := newFakeAPI(t, nil)
	b := newTestBot(t, Config{APIEndpoint: api.endpoint()}, nil, nil)
	err := b.Send(context.Background(), engine.Outbound{
		To: engine.StaffAddress, Channel: "telegram:-1001", Kind: engine.KindAlert, Level: engine.Urgent,
		Patient: "telegram:42", Text: "URGENT \xff patient \x00 _x*",
	})
	if err != nil {
		t.Fatal(err)
	}
	sent := api.sent("sendMessage")
	if len(sent) != 1 || sent[0].form.Get("chat_id") != "-1001" {
		t.Fatalf("want one message to the staff chat, got %+v", sent)
	}
	if got := sent[0].form.Get("text"); got != "URGENT \uFFFD patient  _x*" {
		t.Fatalf("text = %q", got)
	}
	if err := b.Send(context.Background(), engine.Outbound{To: "discord:1", Text: "x"}); err == nil {
		t.Fatal("want an error for a non-Telegram destination")
	}
	if err := b.Send(context.Background(), engine.Outbound{To: "telegram:abc", Text: "x"}); err == nil {
		t.Fatal("want an error for a non-numeric chat")
	}
	// Buttons without text still go out, with a placeholder text.
	if err := b.Send(context.Background(), engine.Outbound{To: "telegram:42", Choices: []engine.Choice{{ID: "a", Label: "A"}}}); err != nil {
		t.Fatal(err)
	}
	if n := len(api.sent("sendMessage")); n != 2 {
		t.Fatalf("want 2 messages, got %d", n)
	}
}

// TestSendPrivateOnlyToAPrivateChat: a private message (a desk sign-in
// link) goes to a user's private chat; one naming a group is refused as
// unreachable, so the dispatcher drops it, and nothing is sent.
func TestSendPrivateOnlyToAPrivateChat(t *testing.T) {
	api := newFakeAPI(t, nil)
	b := newTestBot(t, Config{APIEndpoint: api.endpoint()}, nil, nil)
	ctx := context.Background()
	if err := b.Send(ctx, engine.Outbound{To: "telegram:42", Channel: "telegram:42", Kind: engine.KindNotice, Private: true, Text: "link"}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []engine.Outbound{
		{To: "telegram:-1001", Channel: "telegram:-1001", Kind: engine.KindNotice, Private: true, Text: "link"},
		{To: engine.StaffAddress, Channel: "telegram:-1001", Kind: engine.KindNotice, Private: true, Text: "link"},
	} {
		if err := b.Send(ctx, m); !errors.Is(err, service.ErrUnreachable) {
			t.Errorf("private message to %s: %v, want ErrUnreachable", m.Destination(), err)
		}
	}
	sent := api.sent("sendMessage")
	if len(sent) != 1 || sent[0].form.Get("chat_id") != "42" {
		t.Fatalf("want one message to the private chat 42, got %+v", sent)
	}
}

func TestSendSplitsLongText(t *testing.T) {
	api := newFakeAPI(t, nil)
	b := newTestBot(t, Config{APIEndpoint: api.endpoint()}, nil, nil)
	para := strings.Repeat("Rest and drink water. ", 150) // 3300 chars
	text := para + "\n\n" + para + "\n\n" + para
	err := b.Send(context.Background(), engine.Outbound{ID: 2, To: "telegram:42", Kind: engine.KindCheckin, Text: text,
		Choices: []engine.Choice{{ID: "ok", Label: "OK"}}})
	if err != nil {
		t.Fatal(err)
	}
	sent := api.sent("sendMessage")
	if len(sent) != 3 {
		t.Fatalf("want 3 messages, got %d", len(sent))
	}
	var joined strings.Builder
	for i, c := range sent {
		txt := c.form.Get("text")
		if chunk.UTF16Len(txt) > MaxMessageUTF16 {
			t.Fatalf("part %d too long: %d", i, chunk.UTF16Len(txt))
		}
		joined.WriteString(txt)
		if kb := keyboardOf(t, c); (kb != nil) != (i == 2) {
			t.Fatalf("part %d keyboard = %v; want the keyboard on the last part only", i, kb)
		}
	}
	if joined.String() != text {
		t.Fatal("parts do not add up to the text")
	}
}

func TestSendErrorMapping(t *testing.T) {
	const (
		body429 = `{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 7","parameters":{"retry_after":7}}`
		body403 = `{"ok":false,"error_code":403,"description":"Forbidden: bot was blocked by the user"}`
		body500 = `{"ok":false,"error_code":500,"description":"Internal Server Error"}`
	)
	for _, tc := range []struct {
		name        string
		handle      func(n int) (int, string)
		wantCalls   int
		wantErr     bool
		unreachable bool
		retryAfter  time.Duration
		contains    string
	}{
		{name: "429 maps to RetryAfterError", handle: func(int) (int, string) { return 429, body429 },
			wantCalls: 1, wantErr: true, retryAfter: 7 * time.Second},
		{name: "429 without retry_after waits a second", handle: func(int) (int, string) {
			return 429, `{"ok":false,"error_code":429,"description":"Too Many Requests"}`
		}, wantCalls: 1, wantErr: true, retryAfter: time.Second},
		{name: "403 blocked is unreachable", handle: func(int) (int, string) { return 403, body403 },
			wantCalls: 1, wantErr: true, unreachable: true, contains: "blocked"},
		{name: "400 chat not found is unreachable", handle: func(int) (int, string) {
			return 400, `{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}`
		}, wantCalls: 1, wantErr: true, unreachable: true},
		{name: "other 400 is not retried", handle: func(int) (int, string) {
			return 400, `{"ok":false,"error_code":400,"description":"Bad Request: message text is empty"}`
		}, wantCalls: 1, wantErr: true, contains: "400"},
		{name: "500 then success", handle: func(n int) (int, string) {
			if n < 2 {
				return 500, body500
			}
			return 0, ""
		}, wantCalls: 3},
		{name: "500 persists", handle: func(int) (int, string) { return 500, body500 },
			wantCalls: 3, wantErr: true, contains: "500"},
		{name: "502 HTML from a proxy", handle: func(int) (int, string) { return 502, "<html>bad gateway</html>" },
			wantCalls: 3, wantErr: true, contains: "502"},
		{name: "network error then success", handle: func(n int) (int, string) {
			if n == 0 {
				return -1, ""
			}
			return 0, ""
		}, wantCalls: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := newFakeAPI(t, func(c apiCall, n int) (int, string) {
				if c.method != "sendMessage" {
					return 0, ""
				}
				return tc.handle(n)
			})
			logs := &logBuffer{}
			b := newTestBot(t, Config{APIEndpoint: api.endpoint()}, nil, logs)
			err := b.Send(context.Background(), engine.Outbound{ID: 9, To: "telegram:42", Kind: engine.KindCheckin, Text: "How are you today?"})
			if got := len(api.sent("sendMessage")); got != tc.wantCalls {
				t.Fatalf("sendMessage calls = %d, want %d", got, tc.wantCalls)
			}
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err == nil {
				return
			}
			assertNoSecrets(t, "error", err.Error())
			assertNoSecrets(t, "logs", logs.String())
			if got := errors.Is(err, service.ErrUnreachable); got != tc.unreachable {
				t.Fatalf("errors.Is(err, ErrUnreachable) = %v, want %v (err %v)", got, tc.unreachable, err)
			}
			var ra *service.RetryAfterError
			if got := errors.As(err, &ra); got != (tc.retryAfter > 0) {
				t.Fatalf("RetryAfterError = %v, want %v (err %v)", got, tc.retryAfter > 0, err)
			}
			if ra != nil && ra.After != tc.retryAfter {
				t.Fatalf("After = %s, want %s", ra.After, tc.retryAfter)
			}
			if !strings.Contains(err.Error(), tc.contains) {
				t.Fatalf("err = %q, want it to mention %q", err, tc.contains)
			}
		})
	}
}

// A long message that fails part-way is resumed, not repeated: the
// dispatcher's retry sends only the parts that did not go out.
func TestSendResumesAfterPartialFailure(t *testing.T) {
	api := newFakeAPI(t, func(c apiCall, n int) (int, string) {
		if c.method == "sendMessage" && n == 1 {
			return 429, `{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 1","parameters":{"retry_after":1}}`
		}
		return 0, ""
	})
	b := newTestBot(t, Config{APIEndpoint: api.endpoint()}, nil, nil)
	para := strings.Repeat("x", 4000)
	m := engine.Outbound{ID: 77, To: "telegram:42", Kind: engine.KindReply, Text: para + "\n\n" + para + "\n\n" + para}
	err := b.Send(context.Background(), m)
	var ra *service.RetryAfterError
	if !errors.As(err, &ra) {
		t.Fatalf("first Send = %v, want RetryAfterError", err)
	}
	if err := b.Send(context.Background(), m); err != nil {
		t.Fatalf("retry: %v", err)
	}
	var texts []string
	for _, c := range api.sent("sendMessage") {
		texts = append(texts, c.form.Get("text"))
	}
	// part 1, part 2 (429), part 2, part 3
	if len(texts) != 4 || texts[0] != para+"\n\n" || texts[1] != texts[2] || texts[3] != para {
		t.Fatalf("sent %d texts; want part 1 once, part 2 twice (one 429), part 3 once", len(texts))
	}
	if b.sentParts(77) != 0 {
		t.Fatal("progress not forgotten after success")
	}
}

func TestSendFollowsStaffGroupMigration(t *testing.T) {
	api := newFakeAPI(t, func(c apiCall, n int) (int, string) {
		if c.method == "sendMessage" && c.form.Get("chat_id") == "-1001" {
			return 400, `{"ok":false,"error_code":400,"description":"Bad Request: group chat was upgraded to a supergroup chat","parameters":{"migrate_to_chat_id":-1009999}}`
		}
		return 0, ""
	})
	logs := &logBuffer{}
	b := newTestBot(t, Config{APIEndpoint: api.endpoint()}, nil, logs)
	for i := 0; i < 2; i++ {
		if err := b.Send(context.Background(), engine.Outbound{To: engine.StaffAddress, Channel: "telegram:-1001", Kind: engine.KindAlert, Text: "alert"}); err != nil {
			t.Fatal(err)
		}
	}
	var chats []string
	for _, c := range api.sent("sendMessage") {
		chats = append(chats, c.form.Get("chat_id"))
	}
	if strings.Join(chats, ",") != "-1001,-1009999,-1009999" {
		t.Fatalf("chats = %v", chats)
	}
	if !strings.Contains(logs.String(), "update telegram.staff_chat_id") {
		t.Fatal("migration not logged")
	}
	if !b.gate.StaffChat(PatientID(-1009999)) {
		t.Fatal("the new supergroup is not recognised as the staff chat")
	}
}

// The token must never reach an error or a log line, whatever fails.
func TestTokenNeverLeaks(t *testing.T) {
	t.Run("New against a closed port", func(t *testing.T) {
		// Telegram unreachable at start is an outage, not a configuration
		// error: New returns the Bot (Run keeps trying) and logs why.
		logs := &logBuffer{}
		b, err := New(Config{StaffChatID: -1, APIEndpoint: "http://127.0.0.1:1/bot%s/%s", RequestTimeout: Duration(time.Second)}, testToken, newRecorder(), logs.logger())
		if err != nil {
			t.Fatalf("New with Telegram unreachable: %v; want the Bot, down until Telegram answers", err)
		}
		if b.Ready() || b.Username() != "" {
			t.Error("a Bot that never reached Telegram reports ready or a username")
		}
		assertNoSecrets(t, "logs", logs.String())
		if !strings.Contains(logs.String(), "<token>") {
			t.Fatalf("want the redacted URL in the log, got %q", logs.String())
		}
	})
	t.Run("New with the token rejected", func(t *testing.T) {
		api := newFakeAPI(t, func(c apiCall, n int) (int, string) {
			return 401, `{"ok":false,"error_code":401,"description":"Unauthorized"}`
		})
		_, err := New(Config{StaffChatID: -1, APIEndpoint: api.endpoint()}, testToken, newRecorder(), nil)
		if err == nil || !strings.Contains(err.Error(), "rejected") || !strings.Contains(err.Error(), TokenEnv) {
			t.Fatalf("err = %v, want a rejected-token error naming %s", err, TokenEnv)
		}
		assertNoSecrets(t, "error", err.Error())
	})
	t.Run("server echoing the URL", func(t *testing.T) {
		var api *fakeAPI
		api = newFakeAPI(t, func(c apiCall, n int) (int, string) {
			if c.method == "getMe" {
				return 0, ""
			}
			return 500, `{"message":"cannot route ` + api.srv.URL + "/bot" + testToken + `/x"}`
		})
		logs := &logBuffer{}
		b := newTestBot(t, Config{APIEndpoint: api.endpoint()}, nil, logs)
		err := b.Send(context.Background(), engine.Outbound{To: "telegram:42", Text: "hi"})
		if err == nil {
			t.Fatal("want an error")
		}
		assertNoSecrets(t, "error", err.Error())
		// Run until a failed getUpdates was logged (a condition, not a
		// guessed duration: a busy machine only makes it take longer).
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- b.Run(ctx) }()
		for !strings.Contains(logs.String(), "getUpdates failed") {
			select {
			case err := <-done:
				t.Fatalf("Run returned before a getUpdates failure was logged: %v", err)
			case <-time.After(10 * time.Millisecond): // poll interval
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		assertNoSecrets(t, "logs", logs.String())
		if !strings.Contains(logs.String(), "getUpdates failed") {
			t.Fatalf("want getUpdates failures logged, got:\n%s", logs.String())
		}
	})
	t.Run("connection dropped", func(t *testing.T) {
		api := newFakeAPI(t, func(c apiCall, n int) (int, string) {
			if c.method == "getMe" {
				return 0, ""
			}
			return -1, ""
		})
		logs := &logBuffer{}
		b := newTestBot(t, Config{APIEndpoint: api.endpoint()}, nil, logs)
		err := b.Send(context.Background(), engine.Outbound{To: "telegram:42", Text: "hi"})
		if err == nil {
			t.Fatal("want an error")
		}
		assertNoSecrets(t, "error", err.Error())
		assertNoSecrets(t, "logs", logs.String())
	})
	t.Run("cancelled context", func(t *testing.T) {
		api := newFakeAPI(t, nil)
		b := newTestBot(t, Config{APIEndpoint: api.endpoint()}, nil, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := b.Send(ctx, engine.Outbound{To: "telegram:42", Text: "hi"})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		assertNoSecrets(t, "error", err.Error())
	})
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Config{}, testToken, newRecorder(), nil); err == nil || !strings.Contains(err.Error(), "telegram.staff_chat_id") {
		t.Fatalf("err = %v", err)
	}
	if _, err := New(Config{StaffChatID: -1}, " ", newRecorder(), nil); err == nil || !strings.Contains(err.Error(), TokenEnv) {
		t.Fatalf("err = %v", err)
	}
}
