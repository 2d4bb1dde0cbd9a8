package telegram

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	tgbotapi "github.com/go-telegram-bot-api/telegram-bot-api/v5"

	"github.com/aftercare-clinic/aftercare/bot/config"
)

// Modes of receiving updates.
const (
	// ModePolling is the default: the bot asks Telegram for updates with
	// long polling. It needs no public address, so it suits a clinic server
	// behind a router.
	ModePolling = "polling"
	// ModeWebhook makes Telegram push updates to an HTTPS address the bot
	// listens on. It needs a public HTTPS endpoint (usually a reverse proxy).
	ModeWebhook = "webhook"
)

// TokenEnv is the environment variable holding the bot token. The token is
// read from the environment only, never from the config file, so config
// files can be shared and committed without leaking it.
const TokenEnv = "AFTERCARE_TELEGRAM_TOKEN"

// Config is the "telegram" section of the aftercare config file. Zero values
// take the documented defaults, so an empty section plus staff_chat_id is a
// working polling bot.
type Config struct {
	// APIEndpoint is the Bot API URL format, with one %s for the token and
	// one for the method (the format the telegram-bot-api library uses).
	// Change it for a self-hosted Bot API server or a test emulator.
	// Default "https://api.telegram.org/bot%s/%s".
	APIEndpoint string `json:"api_endpoint,omitempty"`
	// StaffChatID is the chat that receives staff alerts: a group (negative
	// ID) or one person's private chat with the bot. Every message in this
	// chat is treated as coming from staff. Required.
	StaffChatID int64 `json:"staff_chat_id"`
	// StaffUserIDs are Telegram user IDs allowed to use staff commands in a
	// private chat with the bot. Their private messages go to staff handling,
	// never to a patient conversation.
	StaffUserIDs []int64 `json:"staff_user_ids,omitempty"`
	// Mode is "polling" (default) or "webhook".
	Mode string `json:"mode,omitempty"`
	// WebhookURL is the public HTTPS address Telegram posts updates to, in
	// webhook mode. Its path is also the path the bot serves.
	WebhookURL string `json:"webhook_url,omitempty"`
	// WebhookListen is the local address the webhook server listens on, in
	// webhook mode. Default ":8443".
	WebhookListen string `json:"webhook_listen,omitempty"`
	// WebhookMaxConnections caps Telegram's concurrent webhook requests.
	// Default 10.
	WebhookMaxConnections int `json:"webhook_max_connections,omitempty"`
	// PollTimeout is the long-poll timeout sent to getUpdates. Default 30s.
	PollTimeout Duration `json:"poll_timeout,omitempty"`
	// PollInterval is the minimum time between two getUpdates calls that
	// came back empty. Telegram holds a long poll open, but self-hosted
	// servers and emulators answer at once; the interval stops the loop from
	// spinning. Default 300ms.
	PollInterval Duration `json:"poll_interval,omitempty"`
	// RequestTimeout bounds every Bot API call other than the long poll
	// (which gets PollTimeout on top). Default 10s.
	RequestTimeout Duration `json:"request_timeout,omitempty"`
	// SendRetries is how many times Send retries a 5xx or network error
	// itself before returning it to the dispatcher. Default 2; -1 disables.
	SendRetries int `json:"send_retries,omitempty"`
}

// Duration is a time.Duration written in config files as a Go duration
// string ("30s", "250ms"), or as a bare number of seconds. It is the one
// type every platform section uses (see bot/config).
type Duration = config.Duration

// Defaults of Config.
const (
	DefaultPollTimeout           = 30 * time.Second
	DefaultPollInterval          = 300 * time.Millisecond
	DefaultRequestTimeout        = 10 * time.Second
	DefaultSendRetries           = 2
	DefaultWebhookListen         = ":8443"
	DefaultWebhookMaxConnections = 10
)

// withDefaults fills the zero values.
func (c Config) withDefaults() Config {
	if c.APIEndpoint == "" {
		c.APIEndpoint = tgbotapi.APIEndpoint
	}
	if c.Mode == "" {
		c.Mode = ModePolling
	}
	if c.WebhookListen == "" {
		c.WebhookListen = DefaultWebhookListen
	}
	if c.WebhookMaxConnections == 0 {
		c.WebhookMaxConnections = DefaultWebhookMaxConnections
	}
	if c.PollTimeout == 0 {
		c.PollTimeout = Duration(DefaultPollTimeout)
	}
	if c.PollInterval == 0 {
		c.PollInterval = Duration(DefaultPollInterval)
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = Duration(DefaultRequestTimeout)
	}
	switch {
	case c.SendRetries == 0:
		c.SendRetries = DefaultSendRetries
	case c.SendRetries < 0:
		c.SendRetries = 0
	}
	return c
}

// Validate reports the first problem in the section, naming the key and the
// fix, so a clinic admin can correct the file without reading code.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("telegram.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.StaffChatID == 0 {
		bad("staff_chat_id", "must be set to the chat that receives staff alerts (a group ID like -1001234567890, or a person's user ID); see README \"Telegram\" for how to find it")
	}
	for i, id := range c.StaffUserIDs {
		if id <= 0 {
			bad(fmt.Sprintf("staff_user_ids[%d]", i), "must be a positive Telegram user ID, got %d", id)
		}
	}
	if c.APIEndpoint != "" {
		if err := checkEndpoint(c.APIEndpoint); err != nil {
			bad("api_endpoint", "%v; use the form \"https://api.telegram.org/bot%%s/%%s\"", err)
		}
	}
	switch c.Mode {
	case "", ModePolling:
	case ModeWebhook:
		if err := checkWebhookURL(c.WebhookURL); err != nil {
			bad("webhook_url", "%v", err)
		}
		if c.WebhookListen != "" {
			if _, _, err := net.SplitHostPort(c.WebhookListen); err != nil {
				bad("webhook_listen", "must be host:port like \":8443\" or \"127.0.0.1:8443\": %v", err)
			}
		}
	default:
		bad("mode", "must be \"polling\" or \"webhook\", got %q", c.Mode)
	}
	if c.WebhookMaxConnections < 0 || c.WebhookMaxConnections > 100 {
		bad("webhook_max_connections", "must be between 1 and 100, got %d", c.WebhookMaxConnections)
	}
	if c.PollTimeout < 0 || time.Duration(c.PollTimeout) > 50*time.Second {
		bad("poll_timeout", "must be between 0s and 50s, got %s", time.Duration(c.PollTimeout))
	}
	if c.PollInterval < 0 {
		bad("poll_interval", "must not be negative, got %s", time.Duration(c.PollInterval))
	}
	if c.RequestTimeout < 0 {
		bad("request_timeout", "must not be negative, got %s", time.Duration(c.RequestTimeout))
	}
	if c.SendRetries > 10 {
		bad("send_retries", "must be at most 10 (the dispatcher retries too), got %d", c.SendRetries)
	}
	return errors.Join(errs...)
}

// checkEndpoint makes sure the endpoint format has exactly the two %s verbs
// and yields an http(s) URL.
func checkEndpoint(format string) error {
	if strings.Count(format, "%") != 2 || strings.Count(format, "%s") != 2 {
		return errors.New("must contain exactly two %s (token, then method) and no other % verbs")
	}
	u, err := url.Parse(fmt.Sprintf(format, "TOKEN", "getMe"))
	if err != nil {
		return fmt.Errorf("is not a URL: %v", err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Errorf("must start with https:// (or http:// for a local server), got scheme %q", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("has no host")
	}
	return nil
}

// checkWebhookURL accepts https URLs, and http only for loopback hosts
// (local emulators), since Telegram itself only calls HTTPS webhooks.
func checkWebhookURL(s string) error {
	if s == "" {
		return errors.New("must be set in webhook mode to the public https:// address Telegram posts updates to")
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return fmt.Errorf("must be an absolute https:// URL, got %q", s)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
		return errors.New("must use https:// (Telegram only calls HTTPS webhooks); put a TLS reverse proxy in front of webhook_listen")
	default:
		return fmt.Errorf("must use https://, got scheme %q", u.Scheme)
	}
}
