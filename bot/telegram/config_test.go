package telegram

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	ok := Config{StaffChatID: -100}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string // substring of the error; "" for valid
	}{
		{name: "minimal", edit: func(*Config) {}},
		{name: "staff chat missing", edit: func(c *Config) { c.StaffChatID = 0 }, want: "telegram.staff_chat_id: must be set"},
		{name: "bad staff user", edit: func(c *Config) { c.StaffUserIDs = []int64{5, -3} }, want: "telegram.staff_user_ids[1]"},
		{name: "endpoint without verbs", edit: func(c *Config) { c.APIEndpoint = "https://api.telegram.org/bot" }, want: "telegram.api_endpoint"},
		{name: "endpoint ftp", edit: func(c *Config) { c.APIEndpoint = "ftp://x/bot%s/%s" }, want: "telegram.api_endpoint"},
		{name: "local endpoint", edit: func(c *Config) { c.APIEndpoint = "http://127.0.0.1:8081/bot%s/%s" }},
		{name: "bad mode", edit: func(c *Config) { c.Mode = "push" }, want: `telegram.mode: must be "polling" or "webhook"`},
		{name: "webhook without url", edit: func(c *Config) { c.Mode = ModeWebhook }, want: "telegram.webhook_url: must be set"},
		{name: "webhook http public", edit: func(c *Config) { c.Mode = ModeWebhook; c.WebhookURL = "http://clinic.example/tg" }, want: "telegram.webhook_url: must use https://"},
		{name: "webhook http loopback", edit: func(c *Config) { c.Mode = ModeWebhook; c.WebhookURL = "http://127.0.0.1:9/tg" }},
		{name: "webhook https", edit: func(c *Config) {
			c.Mode = ModeWebhook
			c.WebhookURL = "https://clinic.example/tg"
			c.WebhookListen = "127.0.0.1:8443"
		}},
		{name: "webhook bad listen", edit: func(c *Config) {
			c.Mode = ModeWebhook
			c.WebhookURL = "https://clinic.example/tg"
			c.WebhookListen = "8443"
		}, want: "telegram.webhook_listen"},
		{name: "poll timeout too long", edit: func(c *Config) { c.PollTimeout = Duration(time.Minute) }, want: "telegram.poll_timeout"},
		{name: "negative interval", edit: func(c *Config) { c.PollInterval = -1 }, want: "telegram.poll_interval"},
		{name: "too many retries", edit: func(c *Config) { c.SendRetries = 50 }, want: "telegram.send_retries"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestConfigJSON(t *testing.T) {
	var c Config
	in := `{"staff_chat_id":-1001234,"staff_user_ids":[1,2],"mode":"polling","poll_interval":"250ms","request_timeout":"5s","api_endpoint":"http://localhost:8081/bot%s/%s"}`
	if err := json.Unmarshal([]byte(in), &c); err != nil {
		t.Fatal(err)
	}
	if c.StaffChatID != -1001234 || len(c.StaffUserIDs) != 2 || time.Duration(c.PollInterval) != 250*time.Millisecond || time.Duration(c.RequestTimeout) != 5*time.Second {
		t.Fatalf("decoded %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	d := c.withDefaults()
	if time.Duration(d.PollTimeout) != DefaultPollTimeout || d.SendRetries != DefaultSendRetries || d.Mode != ModePolling {
		t.Fatalf("defaults not applied: %+v", d)
	}
	if err := json.Unmarshal([]byte(`{"poll_interval":"soon"}`), &c); err == nil {
		t.Fatal("want an error for a bad duration")
	}
}

// TestConfigBareNumberIsSeconds: a bare number means seconds in the
// telegram section, as in the discord one (it used to mean nanoseconds
// here, so "poll_timeout": 30 was a 30 ns poll).
func TestConfigBareNumberIsSeconds(t *testing.T) {
	var c Config
	if err := json.Unmarshal([]byte(`{"staff_chat_id":-1,"poll_timeout":30,"request_timeout":2.5}`), &c); err != nil {
		t.Fatal(err)
	}
	if time.Duration(c.PollTimeout) != 30*time.Second || time.Duration(c.RequestTimeout) != 2500*time.Millisecond {
		t.Fatalf("poll_timeout = %v, request_timeout = %v; want 30s and 2.5s", time.Duration(c.PollTimeout), time.Duration(c.RequestTimeout))
	}
}
