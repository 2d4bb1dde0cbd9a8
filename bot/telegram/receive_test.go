package telegram

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// The callback is answered before Receive runs, and the pressed button is
// acknowledged only after Receive committed the press.
func TestCallbackAnsweredBeforeReceive(t *testing.T) {
	var mu sync.Mutex
	var order []string
	note := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
	served := false
	api := newFakeAPI(t, func(c apiCall, n int) (int, string) {
		switch c.method {
		case "getUpdates":
			mu.Lock()
			first := !served
			served = true
			mu.Unlock()
			if first {
				return 200, `{"ok":true,"result":[{"update_id":10,"callback_query":{"id":"q1","from":{"id":42,"first_name":"Ann"},"data":"yes",
					"message":{"message_id":5,"chat":{"id":42,"type":"private"},"text":"Ready?","reply_markup":{"inline_keyboard":[[{"text":"Yes","callback_data":"yes"}]]}}}}]}`
			}
		case "answerCallbackQuery":
			note("answer:" + c.form.Get("callback_query_id"))
		case "editMessageText":
			note("edit:" + c.form.Get("text"))
		}
		return 0, ""
	})
	rec := newRecorder()
	rec.onReceive = func(key string) { note("receive:" + key) }
	b := newTestBot(t, Config{APIEndpoint: api.endpoint()}, rec, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	in := rec.waitInbound(t, 1)
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(order)
		mu.Unlock()
		if n >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if in[0].Choice != "yes" || in[0].Text != "Yes" || in[0].DedupeKey != "telegram:update:10" {
		t.Fatalf("inbound = %+v", in[0])
	}
	mu.Lock()
	defer mu.Unlock()
	want := "answer:q1|receive:telegram:update:10|edit:Ready?\n\n✓ Yes"
	if strings.Join(order, "|") != want {
		t.Fatalf("order = %q, want %q", order, want)
	}
}

// A Receive error leaves the update unconfirmed: the same update is handed
// over again, nothing after it is handled first, and the offset only moves
// past it once it is committed.
func TestPollingRetriesFailedUpdate(t *testing.T) {
	var mu sync.Mutex
	var offsets []string
	api := newFakeAPI(t, func(c apiCall, n int) (int, string) {
		if c.method != "getUpdates" {
			return 0, ""
		}
		mu.Lock()
		offsets = append(offsets, c.form.Get("offset"))
		mu.Unlock()
		// A server that, like Telegram, returns everything from offset on.
		var ups []string
		for id := 1; id <= 3; id++ {
			off := 0
			fmt.Sscan(c.form.Get("offset"), &off)
			if id >= off {
				ups = append(ups, fmt.Sprintf(`{"update_id":%d,"message":{"message_id":%d,"from":{"id":42,"first_name":"A"},"chat":{"id":42,"type":"private"},"text":"m%d"}}`, id, id, id))
			}
		}
		return 200, `{"ok":true,"result":[` + strings.Join(ups, ",") + `]}`
	})
	rec := newRecorder()
	failures := 0
	rec.fail = func(key string) error {
		if key == "telegram:update:2" && failures < 2 {
			failures++
			return errors.New("store busy")
		}
		return nil
	}
	b := newTestBot(t, Config{APIEndpoint: api.endpoint()}, rec, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	in := rec.waitInbound(t, 3)
	time.Sleep(100 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, x := range in {
		texts = append(texts, x.Text)
	}
	if strings.Join(texts, ",") != "m1,m2,m3" {
		t.Fatalf("committed %v, want m1,m2,m3 in order", texts)
	}
	if n := rec.callCount("telegram:update:2"); n != 3 {
		t.Fatalf("update 2 delivered %d times, want 3 (two failures, one success)", n)
	}
	rec.mu.Lock()
	calls := strings.Join(rec.calls, ",")
	rec.mu.Unlock()
	if !strings.HasPrefix(calls, "telegram:update:1,telegram:update:2,telegram:update:2,telegram:update:2,telegram:update:3") {
		t.Fatalf("calls = %s", calls)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(offsets) < 2 || offsets[0] != "" || offsets[1] != "4" {
		t.Fatalf("offsets = %q, want none first, then 4", offsets)
	}
}

func TestWebhookHandler(t *testing.T) {
	api := newFakeAPI(t, nil)
	rec := newRecorder()
	fail := 1
	rec.fail = func(key string) error {
		if key == "telegram:update:3" && fail > 0 {
			fail--
			return errors.New("store busy")
		}
		return nil
	}
	b := newTestBot(t, Config{APIEndpoint: api.endpoint()}, rec, nil)
	h := b.WebhookHandler()
	post := func(secret, body string) int {
		req := httptest.NewRequest(http.MethodPost, "/tg", bytes.NewBufferString(body))
		if secret != "" {
			req.Header.Set(SecretHeader, secret)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	update := func(id int, text string) string {
		return fmt.Sprintf(`{"update_id":%d,"message":{"message_id":%d,"from":{"id":42,"first_name":"A"},"chat":{"id":42,"type":"private"},"text":%q}}`, id, id, text)
	}
	secret := WebhookSecret(testToken)
	if strings.Contains(secret, testToken) || len(secret) < 32 {
		t.Fatalf("secret %q", secret)
	}
	for _, tc := range []struct {
		name   string
		secret string
		body   string
		status int
	}{
		{"no secret", "", update(1, "hi"), http.StatusUnauthorized},
		{"wrong secret", "nope", update(1, "hi"), http.StatusUnauthorized},
		{"bad body", secret, "{", http.StatusBadRequest},
		{"update", secret, update(1, "hi"), http.StatusOK},
		{"redelivered update", secret, update(1, "hi"), http.StatusOK},
		{"second update", secret, update(2, "there"), http.StatusOK},
		{"receive fails: Telegram must redeliver", secret, update(3, "again"), http.StatusServiceUnavailable},
		{"redelivery succeeds", secret, update(3, "again"), http.StatusOK},
	} {
		if got := post(tc.secret, tc.body); got != tc.status {
			t.Fatalf("%s: status %d, want %d", tc.name, got, tc.status)
		}
	}
	req := httptest.NewRequest(http.MethodGet, "/tg", nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d", w.Code)
	}
	in, _ := rec.snapshot()
	var texts []string
	for _, x := range in {
		texts = append(texts, x.Text)
	}
	if strings.Join(texts, ",") != "hi,there,again" {
		t.Fatalf("committed %v", texts)
	}
	if n := rec.callCount("telegram:update:1"); n != 1 {
		t.Fatalf("redelivered update reached Receive %d times, want 1 (deduped in the handler)", n)
	}
}

// TestWebhookSharedSecret: instances behind a load balancer share the
// secret from WebhookSecretEnv; setWebhook registers it and the handler
// takes only it, not the secret derived from the token. New refuses a
// secret Telegram would refuse.
func TestWebhookSharedSecret(t *testing.T) {
	const shared = "shared-secret_for-every-instance-0123"
	for _, tc := range []struct {
		secret string
		ok     bool
	}{
		{shared, true},
		{"short", false},
		{"has spaces in it, which Telegram refuses", false},
		{strings.Repeat("a", 257), false},
	} {
		if err := CheckWebhookSecret(tc.secret); (err == nil) != tc.ok {
			t.Errorf("CheckWebhookSecret(%q) = %v, want ok %v", tc.secret, err, tc.ok)
		}
	}
	api := newFakeAPI(t, nil)
	if _, err := New(Config{APIEndpoint: api.endpoint(), StaffChatID: testStaffChat}, testToken, newRecorder(), nil, WithWebhookSecret("short")); err == nil || !strings.Contains(err.Error(), WebhookSecretEnv) {
		t.Fatalf("New with a bad secret: %v, want an error naming %s", err, WebhookSecretEnv)
	}
	rec := newRecorder()
	b, err := New(Config{APIEndpoint: api.endpoint(), StaffChatID: testStaffChat, Mode: ModeWebhook, WebhookURL: "https://clinic.example/tg"}, testToken, rec, nil, WithWebhookSecret(shared))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.setWebhook(context.Background()); err != nil {
		t.Fatal(err)
	}
	calls := api.sent("setWebhook")
	if len(calls) != 1 || calls[0].form.Get("secret_token") != shared {
		t.Fatalf("setWebhook calls %+v, want one with the shared secret", calls)
	}
	h := b.WebhookHandler()
	for _, tc := range []struct {
		secret string
		status int
	}{
		{WebhookSecret(testToken), http.StatusUnauthorized},
		{shared, http.StatusOK},
	} {
		req := httptest.NewRequest(http.MethodPost, "/tg", bytes.NewBufferString(`{"update_id":7,"message":{"message_id":7,"from":{"id":42,"first_name":"A"},"chat":{"id":42,"type":"private"},"text":"hi"}}`))
		req.Header.Set(SecretHeader, tc.secret)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != tc.status {
			t.Errorf("secret %q...: status %d, want %d", tc.secret[:4], w.Code, tc.status)
		}
	}
	if in, _ := rec.snapshot(); len(in) != 1 {
		t.Fatalf("%d updates committed, want 1", len(in))
	}
}
