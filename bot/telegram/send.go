package telegram

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	tgbotapi "github.com/go-telegram-bot-api/telegram-bot-api/v5"

	"github.com/aftercare-clinic/aftercare/bot/chunk"
	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"
)

// emptyText stands in for a message that has buttons but no text, since
// Telegram refuses an empty message.
const emptyText = "…"

// Send delivers one outbound message as plain text (no parse mode, so a
// name like "_x*" is shown as typed), split into several Telegram messages
// when it is longer than 4096 UTF-16 code units, with its choices as an
// inline keyboard on the last part.
//
// A private message (m.Private) goes only to a user's private chat.
//
// It returns an error wrapping service.ErrUnreachable when the chat blocked
// the bot (403), never started it, no longer exists, or is a group asked
// to carry a private message, a *service.RetryAfterError on 429, and
// other errors for transient failures, after retrying 5xx and network errors
// send_retries times itself. When a long message fails part-way, the parts
// already delivered are remembered by m.ID, so the dispatcher's retry sends
// only the rest. Send is safe for concurrent use, but the dispatcher calls it
// one message at a time and does the pacing.
func (b *Bot) Send(ctx context.Context, m engine.Outbound) error {
	chatID, err := chatIDOf(m.Destination())
	if err != nil {
		return err
	}
	if m.Private && chatID <= 0 {
		// A private message (a desk sign-in link) only goes to a user's
		// own private chat, whose ID is the user's (positive); groups and
		// channels have negative IDs. Unreachable, so the dispatcher drops
		// it instead of retrying.
		return fmt.Errorf("telegram: %s: refused: a private message goes to a user's private chat only: %w", m, service.ErrUnreachable)
	}
	chatID = b.currentChat(chatID)
	parts := chunk.Split(cleanText(m.Text), MaxMessageUTF16)
	// Telegram trims whitespace and refuses empty texts: drop blank parts.
	kept := parts[:0]
	for _, p := range parts {
		if strings.TrimSpace(p) != "" {
			kept = append(kept, p)
		}
	}
	parts = kept
	markup, dropped := buildKeyboard(m.Choices)
	if len(dropped) > 0 {
		b.log.Error("telegram: choices with invalid IDs left out of the keyboard (IDs must be 1-64 bytes)", "outbound_id", m.ID, "dropped", len(dropped))
	}
	if len(parts) == 0 {
		if markup == nil {
			b.log.Warn("telegram: outbound message has no text; nothing sent", "outbound_id", m.ID, "kind", m.Kind)
			return nil
		}
		parts = []string{emptyText}
	}
	start := b.sentParts(m.ID)
	for i := start; i < len(parts); i++ {
		msg := tgbotapi.NewMessage(chatID, parts[i])
		if i == len(parts)-1 && markup != nil {
			msg.ReplyMarkup = *markup
		}
		newChat, err := b.sendOne(ctx, msg)
		if newChat != 0 {
			chatID = newChat
		}
		if err != nil {
			if i > 0 {
				b.setSentParts(m.ID, i)
			}
			return b.mapError(chatID, m, err)
		}
	}
	b.setSentParts(m.ID, -1)
	return nil
}

// sendOne sends one Telegram message, retrying 5xx and network errors with a
// short backoff, and following a group's migration to a supergroup (the
// staff chat's ID changes when a group is upgraded). It returns the new chat
// ID when the chat migrated.
func (b *Bot) sendOne(ctx context.Context, msg tgbotapi.MessageConfig) (newChat int64, err error) {
	api := b.apiFor(ctx, b.client)
	for attempt := 0; ; attempt++ {
		_, err = api.Send(msg)
		if err == nil {
			return newChat, nil
		}
		err = b.red.err(err)
		var te *tgbotapi.Error
		if errors.As(err, &te) && te.MigrateToChatID != 0 && newChat == 0 {
			b.migrated(msg.ChatID, te.MigrateToChatID)
			newChat = te.MigrateToChatID
			msg.ChatID = newChat
			continue
		}
		if !transient(err) || attempt >= b.cfg.SendRetries || ctx.Err() != nil {
			return newChat, err
		}
		wait := time.Duration(250*(1<<attempt)) * time.Millisecond
		b.log.Info("telegram: send failed; retrying", "chat_id", msg.ChatID, "attempt", attempt+1, "retry_in", wait, "err", err)
		if !sleep(ctx, wait) {
			return newChat, err
		}
	}
}

// migrated records that a group became a supergroup with a new ID; when it
// is the staff chat, alerts follow it at once and the log says to update the
// config.
func (b *Bot) migrated(from, to int64) {
	b.mu.Lock()
	staff := from == b.staffChat || from == b.cfg.StaffChatID
	if staff {
		b.staffChat = to
		b.gate.AddChat(PatientID(to))
	}
	b.mu.Unlock()
	if staff {
		b.log.Warn("telegram: the staff group became a supergroup; update telegram.staff_chat_id", "old_chat_id", from, "new_chat_id", to)
	}
}

// currentChat follows a staff group's migration to a supergroup.
func (b *Bot) currentChat(id int64) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if id == b.cfg.StaffChatID {
		return b.staffChat
	}
	return id
}

// transient reports whether a failed request is worth retrying at once: a
// network error or a 5xx, not a 4xx.
func transient(err error) bool {
	var te *tgbotapi.Error
	if errors.As(err, &te) {
		return te.Code >= 500 || te.Code == 0
	}
	return true
}

// mapError turns a Bot API error into the errors the dispatcher understands.
func (b *Bot) mapError(chatID int64, m engine.Outbound, err error) error {
	var te *tgbotapi.Error
	if errors.As(err, &te) {
		switch {
		case te.Code == http.StatusTooManyRequests:
			after := time.Duration(te.RetryAfter) * time.Second
			if after <= 0 {
				after = time.Second
			}
			return &service.RetryAfterError{After: after, Err: fmt.Errorf("telegram: chat %d: %s", chatID, te.Message)}
		case te.Code == http.StatusForbidden, unreachable400(te):
			return fmt.Errorf("telegram: chat %d: %w: %s", chatID, service.ErrUnreachable, te.Message)
		default:
			return fmt.Errorf("telegram: sendMessage to chat %d failed (%s): %d %s", chatID, m.Kind, te.Code, te.Message)
		}
	}
	return fmt.Errorf("telegram: sendMessage to chat %d failed (%s): %w", chatID, m.Kind, err)
}

// unreachable400 recognises the 400s that mean the chat is gone for good
// (the account was deleted, or the user never started the bot).
func unreachable400(te *tgbotapi.Error) bool {
	if te.Code != http.StatusBadRequest {
		return false
	}
	d := strings.ToLower(te.Message)
	return strings.Contains(d, "chat not found") || strings.Contains(d, "user is deactivated") || strings.Contains(d, "peer_id_invalid")
}

// sentParts returns how many parts of outbound message id were already
// delivered by an earlier, failed Send.
func (b *Bot) sentParts(id uint64) int {
	if id == 0 {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.progress[id]
}

// setSentParts records progress for a message; n < 0 forgets it.
func (b *Bot) setSentParts(id uint64, n int) {
	if id == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if n < 0 {
		delete(b.progress, id)
		return
	}
	if len(b.progress) > 10000 {
		clear(b.progress) // only a bound; losing it means a duplicate part, never a lost one
	}
	b.progress[id] = n
}

// CheckStaff asks Telegram for a staff chat (getChat) so a wrong chat ID or
// a bot removed from the group is found at start-up, not by the first
// alert. It implements service.StaffChecker: 403 and "chat not found" wrap
// service.ErrUnreachable; other failures are returned as they are.
func (b *Bot) CheckStaff(ctx context.Context, dest engine.PatientID) error {
	chatID, err := chatIDOf(dest)
	if err != nil {
		return fmt.Errorf("%w: %w", err, service.ErrUnreachable)
	}
	chatID = b.currentChat(chatID)
	_, err = b.apiFor(ctx, b.client).MakeRequest("getChat", tgbotapi.Params{"chat_id": strconv.FormatInt(chatID, 10)})
	if err == nil {
		return nil
	}
	err = b.red.err(err)
	var te *tgbotapi.Error
	if errors.As(err, &te) && (te.Code == http.StatusForbidden || unreachable400(te)) {
		return fmt.Errorf("telegram: getChat: %w: %s", service.ErrUnreachable, te.Message)
	}
	return fmt.Errorf("telegram: getChat failed: %w", err)
}
