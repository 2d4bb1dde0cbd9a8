package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aftercare-clinic/aftercare/bot/webhook"
	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"
)

func TestSignedPostAndRetrySemantics(t *testing.T) {
	const secret = "0123456789abcdef-secret"
	var mu sync.Mutex
	var got []webhook.Payload
	status := []int{http.StatusTooManyRequests, http.StatusBadGateway, http.StatusOK}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ts := r.Header.Get("X-Aftercare-Timestamp")
		if r.Header.Get("X-Aftercare-Signature") != webhook.Sign([]byte(secret), ts, body) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		code := status[0]
		status = status[1:]
		if code == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "3")
		}
		if code == http.StatusOK {
			var p webhook.Payload
			json.Unmarshal(body, &p)
			got = append(got, p)
		}
		w.WriteHeader(code)
	}))
	defer srv.Close()
	env := map[string]string{"SMS_SECRET": secret}
	s, err := webhook.New([]webhook.Endpoint{{Name: "sms", URL: srv.URL, SecretEnv: "SMS_SECRET"}}, func(k string) string { return env[k] }, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := engine.Outbound{ID: 7, To: engine.StaffAddress, Channel: "webhook:sms", Kind: engine.KindAlert, Level: engine.Urgent, Patient: "telegram:1", Text: "[URGENT] ..."}
	var ra *service.RetryAfterError
	if err := s.Send(context.Background(), m); !errors.As(err, &ra) || ra.After.Seconds() != 3 {
		t.Fatalf("429: %v", err)
	}
	if err := s.Send(context.Background(), m); err == nil {
		t.Fatal("502 must be an error so the outbox retries")
	}
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Level != "urgent" || got[0].ID != 7 || got[0].Patient != "telegram:1" {
		t.Fatalf("payload %+v", got)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	cases := []struct {
		ep   webhook.Endpoint
		want string
	}{
		{webhook.Endpoint{Name: "", URL: "https://x", SecretEnv: "S"}, "webhooks[0].name"},
		{webhook.Endpoint{Name: "sms", URL: "ftp://x", SecretEnv: "S"}, "webhooks[0].url"},
		{webhook.Endpoint{Name: "sms", URL: "https://x"}, "webhooks[0].secret_env"},
		{webhook.Endpoint{Name: "sms", URL: "https://x", SecretEnv: "S"}, "at least 16"},
	}
	for _, tc := range cases {
		_, err := webhook.New([]webhook.Endpoint{tc.ep}, func(string) string { return "short" }, nil)
		if err == nil || !contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.ep, err, tc.want)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
