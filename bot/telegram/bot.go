package telegram

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	tgbotapi "github.com/go-telegram-bot-api/telegram-bot-api/v5"

	"github.com/aftercare-clinic/aftercare/backoff"
	"github.com/aftercare-clinic/aftercare/bot/chunk"
	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"
	"github.com/aftercare-clinic/aftercare/staffgate"
)

// PlatformName is the platform prefix of Telegram PatientIDs ("telegram:123").
const PlatformName = "telegram"

// The adapter is the service's Sender for Telegram.
var _ service.Sender = (*Bot)(nil)

// allowedUpdates are the update types the bot asks for; anything else
// (channel posts, inline queries, payments) is of no use to a clinic bot.
var allowedUpdates = []string{"message", "edited_message", "callback_query"}

// Bot is the Telegram adapter: it receives updates (long polling or a
// webhook), translates them for the Receiver, and delivers outbound messages.
//
// Run must be called at most once at a time. Send may be called from any
// goroutine, concurrently with Run.
type Bot struct {
	// lastOK is when getUpdates last succeeded (unix ns), or, in webhook
	// mode, when the webhook was set; Ready reads it.
	lastOK atomic.Int64
	// self is the bot's own user from getMe; nil until Telegram answered.
	self   atomic.Pointer[tgbotapi.User]
	cfg    Config
	recv   Receiver
	log    *slog.Logger
	red    redactor
	api    *tgbotapi.BotAPI // template; per-call copies bind a context
	client *http.Client     // request_timeout
	poll   *http.Client     // poll_timeout + request_timeout

	gate *staffgate.Gate // who is staff: the staff chat (and its migrations), staff_user_ids

	mu        sync.Mutex
	staffChat int64            // may change when a group migrates to a supergroup
	progress  map[uint64]int   // outbound ID -> parts already delivered
	answered  map[string]bool  // callback query IDs already answered
	answeredQ []string         // answer order, to bound the map
	seen      map[int]struct{} // webhook: update IDs already committed
	seenQ     []int
	chatLocks [64]sync.Mutex // webhook: one update at a time per chat

	// confirmOnStop makes Run confirm the last offset when it stops; tests
	// turn it off to play a crash.
	confirmOnStop bool

	// retry spaces the attempts after a failed getMe, getUpdates or
	// Receive. Tests shorten it (WithBackoff).
	retry backoff.Policy
}

// ErrTokenRejected means Telegram refused the bot token (HTTP 401): a
// configuration error that retrying cannot fix.
var ErrTokenRejected = errors.New("bot token rejected")

// Option changes how New builds the Bot.
type Option func(*Bot)

// WithBackoff sets the waits between attempts after a failed getMe,
// getUpdates or Receive (default 200 ms doubling to 30 s, jittered). Tests
// shorten them so an outage they stage does not make them sleep.
func WithBackoff(p backoff.Policy) Option { return func(b *Bot) { b.retry = p } }

// New returns a Bot ready to Run and Send, checking the token with getMe.
// A token Telegram rejects is an error (ErrTokenRejected). When Telegram
// cannot be reached at all, New still returns the Bot (after at most
// request_timeout): Run keeps calling getMe with backoff until Telegram
// answers, Ready reports false meanwhile, and Send fails (so messages wait
// in the outbox), so an outage at start-up takes down Telegram only, not
// the process. The token comes from the environment (TokenEnv) and never
// appears in the errors or logs the Bot produces. logger may be nil.
func New(cfg Config, token string, recv Receiver, logger *slog.Logger, opts ...Option) (*Bot, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return nil, fmt.Errorf("telegram: %s is empty: create a bot with @BotFather and export its token", TokenEnv)
	}
	if recv == nil {
		return nil, errors.New("telegram: New needs a Receiver")
	}
	if logger == nil {
		logger = slog.Default()
	}
	cfg = cfg.withDefaults()
	b := &Bot{
		cfg:           cfg,
		recv:          recv,
		log:           logger.With("platform", PlatformName),
		red:           redactor{token: token},
		client:        newHTTPClient(time.Duration(cfg.RequestTimeout)),
		poll:          newHTTPClient(time.Duration(cfg.RequestTimeout) + time.Duration(cfg.PollTimeout)),
		gate:          newGate(cfg),
		staffChat:     cfg.StaffChatID,
		progress:      map[uint64]int{},
		answered:      map[string]bool{},
		seen:          map[int]struct{}{},
		retry:         backoff.Policy{Min: 200 * time.Millisecond, Max: 30 * time.Second},
		confirmOnStop: true,
	}
	for _, o := range opts {
		o(b)
	}
	// Built without the library's getMe, which would make an unreachable
	// Telegram an error here.
	b.api = &tgbotapi.BotAPI{Token: token, Client: doer{client: b.client, red: b.red}, Buffer: 100}
	b.api.SetAPIEndpoint(cfg.APIEndpoint)
	if err := b.getMe(context.Background()); err != nil {
		if errors.Is(err, ErrTokenRejected) {
			return nil, err
		}
		b.log.Warn("telegram: Bot API not reachable at start; Telegram stays down and keeps trying, the rest runs", "err", err)
	}
	return b, nil
}

// getMe asks Telegram who the bot is, which also checks the token.
func (b *Bot) getMe(ctx context.Context) error {
	self, err := b.apiFor(ctx, b.client).GetMe()
	if err != nil {
		err = b.red.err(err)
		var te *tgbotapi.Error
		if errors.As(err, &te) && te.Code == http.StatusUnauthorized {
			return fmt.Errorf("telegram: the bot token in %s was rejected (getMe: %s); copy it again from @BotFather: %w", TokenEnv, te.Message, ErrTokenRejected)
		}
		return fmt.Errorf("telegram: getMe failed (check %s and telegram.api_endpoint): %w", TokenEnv, err)
	}
	b.self.Store(&self)
	b.log.Info("telegram bot ready", "bot_id", self.ID, "mode", b.cfg.Mode)
	return nil
}

// connect calls getMe until Telegram answers (unless New already got an
// answer), with backoff. It reports false when ctx ended first.
func (b *Bot) connect(ctx context.Context) bool {
	for n := 1; b.self.Load() == nil; n++ {
		err := b.getMe(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return false
		}
		wait := b.retry.Delay(n)
		if errors.Is(err, ErrTokenRejected) {
			b.log.Error("telegram: token rejected; check "+TokenEnv, "err", err, "retry_in", wait)
		} else {
			b.log.Warn("telegram: Bot API not reachable; retrying", "err", err, "retry_in", wait, "failures", n)
		}
		if !sleep(ctx, wait) {
			return false
		}
	}
	return true
}

func newHTTPClient(timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = 10 * time.Second
	tr.ResponseHeaderTimeout = timeout
	return &http.Client{Timeout: timeout, Transport: tr}
}

// apiFor returns a copy of the library client whose requests carry ctx, so
// cancelling ctx aborts the request in flight.
func (b *Bot) apiFor(ctx context.Context, client *http.Client) *tgbotapi.BotAPI {
	api := *b.api
	api.Client = doer{client: client, red: b.red, ctx: ctx}
	return &api
}

// Platform returns "telegram", the prefix of the PatientIDs this Bot serves.
func (b *Bot) Platform() string { return PlatformName }

// BotID returns the bot's own Telegram user ID, from getMe.
// It is 0 until Telegram answered getMe.
func (b *Bot) BotID() int64 {
	if u := b.self.Load(); u != nil {
		return u.ID
	}
	return 0
}

// Username returns the bot's @username, from getMe, for deep links
// (https://t.me/<username>?start=<payload>).
// It is "" until Telegram answered getMe.
func (b *Bot) Username() string {
	if u := b.self.Load(); u != nil {
		return u.UserName
	}
	return ""
}

// newGate returns the staff rules of cfg: every member of the staff chat
// is staff, and so are the staff_user_ids (in a private chat with the bot).
func newGate(cfg Config) *staffgate.Gate {
	r := staffgate.Rules{}
	if cfg.StaffChatID != 0 {
		r.Chats = append(r.Chats, PatientID(cfg.StaffChatID))
	}
	for _, id := range cfg.StaffUserIDs {
		r.Users = append(r.Users, staffUser(id))
	}
	return staffgate.New(r)
}

// Run receives updates until ctx is cancelled, then returns nil. It first
// waits, calling getMe with backoff, until Telegram answers. In polling
// mode it long-polls getUpdates with an explicit offset that only moves past
// an update once the Receiver returned nil for it; in webhook mode it
// registers the webhook and serves it on webhook_listen. It returns an error
// only when it cannot start (the webhook address cannot be listened on, or
// Telegram refuses the webhook).
func (b *Bot) Run(ctx context.Context) error {
	if !b.connect(ctx) {
		return nil
	}
	if b.cfg.Mode == ModeWebhook {
		return b.runWebhook(ctx)
	}
	return b.runPolling(ctx)
}

// runPolling is the long-poll loop. It deliberately avoids the library's
// GetUpdatesChan, which confirms an update as soon as it is buffered (a crash
// then loses it) and has no timeouts or backoff.
func (b *Bot) runPolling(ctx context.Context) error {
	api := b.apiFor(ctx, b.poll)
	// getUpdates answers 409 while a webhook is set; remove it (pending
	// updates are kept).
	if _, err := api.MakeRequest("deleteWebhook", tgbotapi.Params{"drop_pending_updates": "false"}); err != nil && ctx.Err() == nil {
		b.log.Warn("telegram: deleteWebhook failed; getUpdates may answer 409 while a webhook is set", "err", b.red.err(err))
	}
	offset := 0
	failures := 0
	interval := time.Duration(b.cfg.PollInterval)
	for {
		if ctx.Err() != nil {
			b.confirm(offset)
			return nil
		}
		started := time.Now()
		updates, err := api.GetUpdates(tgbotapi.UpdateConfig{
			Offset:         offset,
			Limit:          100,
			Timeout:        int(time.Duration(b.cfg.PollTimeout) / time.Second),
			AllowedUpdates: allowedUpdates,
		})
		if err != nil {
			if ctx.Err() != nil {
				continue
			}
			failures++
			wait := b.backoff(failures)
			var te *tgbotapi.Error
			if errors.As(err, &te) {
				switch {
				case te.Code == http.StatusTooManyRequests && te.RetryAfter > 0:
					wait = time.Duration(te.RetryAfter) * time.Second
				case te.Code == http.StatusConflict:
					b.log.Error("telegram: getUpdates conflict: another instance is polling this bot, or a webhook is set", "err", b.red.err(err))
				case te.Code == http.StatusUnauthorized:
					b.log.Error("telegram: token rejected by getUpdates; check "+TokenEnv, "err", b.red.err(err))
				}
			}
			b.log.Warn("telegram: getUpdates failed", "err", b.red.err(err), "retry_in", wait, "failures", failures)
			sleep(ctx, wait)
			continue
		}
		failures = 0
		b.lastOK.Store(time.Now().UnixNano())
		// Answer every button press in the batch first, so each one is
		// answered within a second even when an earlier update is slow.
		for _, u := range updates {
			if u.UpdateID >= offset && u.CallbackQuery != nil {
				b.answerCallback(ctx, u.CallbackQuery)
			}
		}
		for _, u := range updates {
			if u.UpdateID < offset {
				continue // already committed; a server that ignores offsets sent it again
			}
			if err := b.process(ctx, u); err != nil {
				break // ctx cancelled: the update stays unconfirmed
			}
			offset = u.UpdateID + 1
		}
		if len(updates) == 0 {
			sleep(ctx, interval-time.Since(started))
		}
	}
}

// confirm tells Telegram that every update below offset was handled, so a
// restart does not receive them again (they would be deduplicated anyway).
// It runs on shutdown with a short deadline of its own.
func (b *Bot) confirm(offset int) {
	b.mu.Lock()
	skip := !b.confirmOnStop
	b.mu.Unlock()
	if offset == 0 || skip {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// Limit 1 and timeout 0: at most one update is fetched, and a fetched
	// update stays unconfirmed until a later call passes its ID + 1.
	_, err := b.apiFor(ctx, b.client).GetUpdates(tgbotapi.UpdateConfig{Offset: offset, Limit: 1, AllowedUpdates: allowedUpdates})
	if err != nil {
		b.log.Debug("telegram: confirming the last offset on shutdown failed", "err", b.red.err(err))
	}
}

// process hands one update to the Receiver, retrying with backoff until it
// returns nil; it only returns an error when ctx is cancelled, so an update
// is never skipped.
func (b *Bot) process(ctx context.Context, u tgbotapi.Update) error {
	for attempt := 1; ; attempt++ {
		err := b.handle(ctx, u)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wait := b.backoff(attempt)
		b.log.Warn("telegram: update not committed; retrying", "update_id", u.UpdateID, "attempt", attempt, "retry_in", wait, "err", b.red.err(err))
		if !sleep(ctx, wait) {
			return ctx.Err()
		}
	}
}

// handle translates one update and hands it to the Receiver. It returns the
// Receiver's error; everything else (a refusal that could not be sent, an
// ignored group message) is logged and counts as handled.
func (b *Bot) handle(ctx context.Context, u tgbotapi.Update) error {
	r := translate(u, b.gate)
	if r.callback != nil {
		// Before Receive, so the button's spinner stops within a second.
		b.answerCallback(ctx, r.callback)
	}
	switch r.kind {
	case routeIgnore:
		b.log.Info("telegram: update ignored", "update_id", u.UpdateID, "chat_id", r.chatID, "reason", r.reason)
		return nil
	case routeRefuse:
		b.log.Info("telegram: staff command from a non-staff chat refused", "update_id", u.UpdateID, "chat_id", r.chatID)
		msg := tgbotapi.NewMessage(r.chatID, refusalText)
		if _, err := b.apiFor(ctx, b.client).Send(msg); err != nil {
			b.log.Warn("telegram: sending the refusal failed", "update_id", u.UpdateID, "chat_id", r.chatID, "err", b.red.err(err))
		}
		return nil
	case routeStaff:
		if err := b.recv.ReceiveStaff(ctx, r.staff); err != nil {
			return err
		}
	case routePatient:
		if err := b.recv.Receive(ctx, r.inbound); err != nil {
			return err
		}
	}
	b.log.Debug("telegram: update committed", "update_id", u.UpdateID, "chat_id", r.chatID)
	if r.callback != nil {
		b.markPressed(ctx, r.callback, r.label)
	}
	return nil
}

// refusalText answers a non-staff user who typed a staff command.
const refusalText = "Sorry, that command is only for clinic staff. You can simply write to me in your own words, or press one of the buttons."

// answerCallback answers a callback query once (Telegram shows a spinner on
// the button until it is answered). Failures are logged, not fatal.
func (b *Bot) answerCallback(ctx context.Context, q *tgbotapi.CallbackQuery) {
	if q.ID == "" {
		return
	}
	b.mu.Lock()
	if b.answered[q.ID] {
		b.mu.Unlock()
		return
	}
	b.answered[q.ID] = true
	b.answeredQ = append(b.answeredQ, q.ID)
	if len(b.answeredQ) > 4096 {
		delete(b.answered, b.answeredQ[0])
		b.answeredQ = b.answeredQ[1:]
	}
	b.mu.Unlock()
	actx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := b.apiFor(actx, b.client).Request(tgbotapi.NewCallback(q.ID, "")); err != nil {
		b.log.Info("telegram: answerCallbackQuery failed", "callback_id", q.ID, "err", b.red.err(err))
	}
}

// markPressed acknowledges a pressed button by rewriting the message with
// "✓ <label>" appended and its keyboard removed, so the patient sees what
// was recorded and cannot press twice. Failures are logged, not fatal: the
// press itself is already committed.
func (b *Bot) markPressed(ctx context.Context, q *tgbotapi.CallbackQuery, label string) {
	m := q.Message
	if m == nil || m.Chat == nil || m.MessageID == 0 {
		return
	}
	api := b.apiFor(ctx, b.client)
	var err error
	text := m.Text
	if label != "" && text != "" && chunk.UTF16Len(text)+chunk.UTF16Len(label)+3 <= MaxMessageUTF16 {
		edit := tgbotapi.NewEditMessageText(m.Chat.ID, m.MessageID, text+"\n\n✓ "+label)
		_, err = api.Request(edit)
	} else {
		edit := tgbotapi.NewEditMessageReplyMarkup(m.Chat.ID, m.MessageID, tgbotapi.InlineKeyboardMarkup{InlineKeyboard: [][]tgbotapi.InlineKeyboardButton{}})
		_, err = api.Request(edit)
	}
	if err != nil {
		b.log.Info("telegram: acknowledging the pressed button failed", "chat_id", m.Chat.ID, "message_id", m.MessageID, "err", b.red.err(err))
	}
}

// backoff returns the wait before retry n (1-based), from b.retry.
func (b *Bot) backoff(n int) time.Duration { return b.retry.Delay(n) }

// sleep waits d or until ctx is done; it reports whether the full wait passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// chatIDOf parses the address part of a Telegram PatientID.
func chatIDOf(p engine.PatientID) (int64, error) {
	if p.Platform() != PlatformName {
		return 0, fmt.Errorf("telegram: %s is not a Telegram address", p)
	}
	id, err := strconv.ParseInt(p.Address(), 10, 64)
	if err != nil || id == 0 {
		return 0, fmt.Errorf("telegram: %s has no numeric chat ID", p)
	}
	return id, nil
}

// Ready reports whether the bot is connected: in polling mode, getUpdates
// succeeded within the last long-poll timeout plus two request timeouts;
// in webhook mode, the webhook was set. The operations listener's /readyz
// uses it.
func (b *Bot) Ready() bool {
	last := b.lastOK.Load()
	if last == 0 {
		return false
	}
	if b.cfg.Mode == ModeWebhook {
		return true
	}
	limit := time.Duration(b.cfg.PollTimeout) + 2*time.Duration(b.cfg.RequestTimeout) + time.Duration(b.cfg.PollInterval)
	return time.Since(time.Unix(0, last)) < limit
}
