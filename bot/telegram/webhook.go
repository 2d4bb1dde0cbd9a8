package telegram

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	tgbotapi "github.com/go-telegram-bot-api/telegram-bot-api/v5"
)

// SecretHeader is the header Telegram sets on every webhook request to the
// secret_token given to setWebhook.
const SecretHeader = "X-Telegram-Bot-Api-Secret-Token"

// WebhookSecretEnv is the environment variable that may hold the
// webhook's secret_token, shared by every instance behind the load
// balancer. Unset, the secret is derived from the bot token.
const WebhookSecretEnv = "AFTERCARE_TELEGRAM_WEBHOOK_SECRET"

// CheckWebhookSecret reports whether Telegram accepts s as a
// secret_token: 1 to 256 characters of A-Z, a-z, 0-9, _ and -. A secret
// shorter than 16 characters is refused too, since it guards every
// update's way in.
func CheckWebhookSecret(s string) error {
	if len(s) < 16 || len(s) > 256 {
		return fmt.Errorf("the webhook secret must be 16 to 256 characters long, got %d", len(s))
	}
	for _, r := range s {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return errors.New("the webhook secret may only hold A-Z, a-z, 0-9, _ and -")
		}
	}
	return nil
}

// webhookSecret is the secret_token in use.
func (b *Bot) webhookSecret() string {
	if b.secret != "" {
		return b.secret
	}
	return WebhookSecret(b.red.token)
}

// webhookTimeout bounds the handling of one webhook update; Telegram
// redelivers an update whose request failed or timed out.
const webhookTimeout = 25 * time.Second

// WebhookSecret derives the webhook's secret_token from the bot token, so
// there is no second secret to configure, restarts agree on it, and it
// reveals nothing about the token. It only uses the characters Telegram
// allows (A-Z a-z 0-9 _ -).
func WebhookSecret(token string) string {
	sum := sha256.Sum256([]byte("aftercare telegram webhook secret\x00" + token))
	return hex.EncodeToString(sum[:20])
}

// WebhookHandler returns the handler for Telegram's webhook requests, for
// callers that mount it on their own server (Run does this itself in
// webhook mode). It rejects any request without the right secret header,
// hands the update to the Receiver, and answers 200 once the update is
// committed (or was already), or 503 so that Telegram delivers it again. It
// handles one update per chat at a time, keeping each chat's order.
func (b *Bot) WebhookHandler() http.Handler { return http.HandlerFunc(b.serveWebhook) }

func (b *Bot) serveWebhook(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	secret := b.webhookSecret()
	if subtle.ConstantTimeCompare([]byte(r.Header.Get(SecretHeader)), []byte(secret)) != 1 {
		b.log.Warn("telegram: webhook request with a wrong or missing secret rejected", "remote", r.RemoteAddr)
		http.Error(w, "forbidden", http.StatusUnauthorized)
		return
	}
	var u tgbotapi.Update
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&u); err != nil {
		b.log.Warn("telegram: webhook body is not an update", "err", err)
		http.Error(w, "bad update", http.StatusBadRequest)
		return
	}
	if b.wasSeen(u.UpdateID) {
		w.WriteHeader(http.StatusOK)
		return
	}
	lock := &b.chatLocks[uint64(updateChat(u))%uint64(len(b.chatLocks))]
	lock.Lock()
	defer lock.Unlock()
	if b.wasSeen(u.UpdateID) { // a redelivery that waited for the first attempt
		w.WriteHeader(http.StatusOK)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), webhookTimeout)
	defer cancel()
	if err := b.handle(ctx, u); err != nil {
		b.log.Warn("telegram: webhook update not committed; Telegram will deliver it again", "update_id", u.UpdateID, "err", b.red.err(err))
		http.Error(w, "try again", http.StatusServiceUnavailable)
		return
	}
	b.markSeen(u.UpdateID)
	w.WriteHeader(http.StatusOK)
}

// updateChat returns the chat an update belongs to, for per-chat ordering.
func updateChat(u tgbotapi.Update) int64 {
	switch {
	case u.Message != nil && u.Message.Chat != nil:
		return u.Message.Chat.ID
	case u.EditedMessage != nil && u.EditedMessage.Chat != nil:
		return u.EditedMessage.Chat.ID
	case u.CallbackQuery != nil && u.CallbackQuery.Message != nil && u.CallbackQuery.Message.Chat != nil:
		return u.CallbackQuery.Message.Chat.ID
	case u.CallbackQuery != nil && u.CallbackQuery.From != nil:
		return u.CallbackQuery.From.ID
	}
	return 0
}

// wasSeen reports whether the webhook already committed an update. It is
// only a fast path: the service dedupes by DedupeKey as well.
func (b *Bot) wasSeen(id int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.seen[id]
	return ok
}

func (b *Bot) markSeen(id int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.seen[id]; ok {
		return
	}
	b.seen[id] = struct{}{}
	b.seenQ = append(b.seenQ, id)
	if len(b.seenQ) > 4096 {
		delete(b.seen, b.seenQ[0])
		b.seenQ = b.seenQ[1:]
	}
}

// runWebhook listens on webhook_listen, registers the webhook with its
// secret and serves until ctx is cancelled. The webhook stays registered on
// exit, so Telegram keeps updates queued across a restart.
func (b *Bot) runWebhook(ctx context.Context) error {
	u, err := url.Parse(b.cfg.WebhookURL)
	if err != nil {
		return fmt.Errorf("telegram.webhook_url: %v", err)
	}
	path := u.Path
	if path == "" {
		path = "/"
	}
	ln, err := net.Listen("tcp", b.cfg.WebhookListen)
	if err != nil {
		return fmt.Errorf("telegram.webhook_listen: cannot listen on %s: %w", b.cfg.WebhookListen, err)
	}
	mux := http.NewServeMux()
	mux.Handle(path, b.WebhookHandler())
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      webhookTimeout + 5*time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := b.setWebhook(ctx); err != nil {
		return err
	}
	b.log.Info("telegram: webhook registered", "listen", ln.Addr().String())
	select {
	case <-ctx.Done():
		return nil
	case err := <-served:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("telegram: webhook server stopped: %w", err)
	}
}

// setWebhook registers the webhook, retrying network errors, 5xx and 429
// until ctx is cancelled; a 4xx means the configuration is wrong.
func (b *Bot) setWebhook(ctx context.Context) error {
	allowed, _ := json.Marshal(allowedUpdates)
	params := tgbotapi.Params{
		"url":                  b.cfg.WebhookURL,
		"secret_token":         b.webhookSecret(),
		"max_connections":      fmt.Sprint(b.cfg.WebhookMaxConnections),
		"allowed_updates":      string(allowed),
		"drop_pending_updates": "false",
	}
	api := b.apiFor(ctx, b.client)
	for attempt := 1; ; attempt++ {
		_, err := api.MakeRequest("setWebhook", params)
		if err == nil {
			b.lastOK.Store(time.Now().UnixNano())
			return nil
		}
		err = b.red.err(err)
		if ctx.Err() != nil {
			return nil
		}
		var te *tgbotapi.Error
		wait := b.backoff(attempt)
		if errors.As(err, &te) {
			switch {
			case te.Code == http.StatusTooManyRequests:
				wait = max(wait, time.Duration(te.RetryAfter)*time.Second)
			case te.Code >= 400 && te.Code < 500:
				return fmt.Errorf("telegram: setWebhook refused (check telegram.webhook_url): %d %s", te.Code, te.Message)
			}
		}
		b.log.Warn("telegram: setWebhook failed; retrying", "err", err, "retry_in", wait)
		if !sleep(ctx, wait) {
			return nil
		}
	}
}
