package telegramtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
)

// User is a Telegram user the test plays.
type User struct {
	ID        int64
	FirstName string
	LastName  string
	Username  string
	// LanguageCode is the language of the user's Telegram app ("es"),
	// sent as from.language_code when set.
	LanguageCode string
}

// Chat is where a user writes: their private chat with the bot (ID equal to
// the user's ID) or a group.
type Chat struct {
	ID    int64
	Type  string // "private", "group", "supergroup"
	Title string
}

// Private returns the user's private chat with the bot.
func (u User) Private() Chat { return Chat{ID: u.ID, Type: "private"} }

// Client plays users through the emulator's client API. It talks to the
// emulator directly, not through the Proxy, since it stands for Telegram's
// apps, not the bot.
type Client struct {
	// URL is the emulator's base URL.
	URL string
	// Token is the bot token the messages are addressed to.
	Token string
	http  *http.Client
}

// NewClient returns a client for the bot with token on the emulator at url.
func NewClient(url, token string) *Client {
	return &Client{URL: url, Token: token, http: &http.Client{Timeout: 10 * time.Second}}
}

func (c *Client) post(ctx context.Context, path string, body any) (json.RawMessage, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL+path, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Ok      bool            `json:"ok"`
		Result  json.RawMessage `json:"result"`
		Message string          `json:"message"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("%s: HTTP %d: %v", path, resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK || !out.Ok {
		return nil, fmt.Errorf("%s: HTTP %d: %s", path, resp.StatusCode, out.Message)
	}
	return out.Result, nil
}

func (c *Client) message(from User, chat Chat, text string) map[string]any {
	title := chat.Title
	if title == "" {
		title = from.FirstName
	}
	f := map[string]any{
		"id": from.ID, "is_bot": false, "first_name": from.FirstName,
		"last_name": from.LastName, "username": from.Username,
	}
	if from.LanguageCode != "" {
		f["language_code"] = from.LanguageCode
	}
	return map[string]any{
		"botToken": c.Token,
		"date":     time.Now().Unix(),
		"from":     f,
		"chat": map[string]any{
			"id": chat.ID, "type": chat.Type, "title": title,
			"first_name": from.FirstName, "username": from.Username,
		},
		"text": text,
	}
}

// SendMessage sends text from a user in a chat, as typed in the app.
func (c *Client) SendMessage(ctx context.Context, from User, chat Chat, text string) error {
	_, err := c.post(ctx, "/sendMessage", c.message(from, chat, text))
	return err
}

// SendCommand sends a command such as "/start abc" with its bot_command
// entity, as Telegram does for a deep link or a typed command.
func (c *Client) SendCommand(ctx context.Context, from User, chat Chat, text string) error {
	head := text
	if i := strings.IndexAny(text, " \n"); i >= 0 {
		head = text[:i]
	}
	m := c.message(from, chat, text)
	m["entities"] = []map[string]any{{"type": "bot_command", "offset": 0, "length": len(utf16.Encode([]rune(head)))}}
	_, err := c.post(ctx, "/sendCommand", m)
	return err
}

// SendRaw sends a message with extra fields (a sticker, a photo with a
// caption); fields override the defaults of a text message, and a nil value
// removes a field.
func (c *Client) SendRaw(ctx context.Context, from User, chat Chat, fields map[string]any) error {
	m := c.message(from, chat, "")
	delete(m, "text")
	for k, v := range fields {
		if v == nil {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	_, err := c.post(ctx, "/sendMessage", m)
	return err
}

// Press presses the button with callback data on a message the bot sent,
// sending the callback query with the message (text, keyboard, message_id)
// the way Telegram does.
func (c *Client) Press(ctx context.Context, from User, chat Chat, m BotMessage, data string) error {
	msg := map[string]any{
		"message_id": m.MessageID,
		"date":       time.Now().Unix(),
		"from":       map[string]any{"id": 666, "is_bot": true, "first_name": "Bot"},
		"chat":       map[string]any{"id": chat.ID, "type": chat.Type, "title": chat.Title},
		"text":       m.Text,
	}
	if len(m.Keyboard) > 0 {
		rows := [][]map[string]any{}
		for _, row := range m.Keyboard {
			r := []map[string]any{}
			for _, b := range row {
				r = append(r, map[string]any{"text": b.Text, "callback_data": b.Data})
			}
			rows = append(rows, r)
		}
		msg["reply_markup"] = map[string]any{"inline_keyboard": rows}
	}
	q := map[string]any{
		"botToken": c.Token,
		"from": map[string]any{
			"id": from.ID, "is_bot": false, "first_name": from.FirstName,
			"last_name": from.LastName, "username": from.Username,
		},
		"message": msg,
		"data":    data,
	}
	_, err := c.post(ctx, "/sendCallback", q)
	return err
}

// Button is one inline keyboard button as the bot sent it.
type Button struct {
	Text string `json:"text"`
	Data string `json:"callback_data"`
}

// BotMessage is a message the bot sent, as the emulator stored it.
type BotMessage struct {
	MessageID int
	UpdateID  int
	ChatID    int64
	Text      string
	// Keyboard is the inline keyboard, nil when there is none.
	Keyboard [][]Button
	// ParseMode is the parse_mode the bot asked for ("" for plain text).
	ParseMode string
	// At is when the emulator stored the message, to the millisecond: the
	// moment "Telegram" accepted it, which is what its rate limits count.
	At time.Time
}

// Choices returns the keyboard's callback data, row by row, flattened.
func (m BotMessage) Choices() []string {
	var out []string
	for _, row := range m.Keyboard {
		for _, b := range row {
			out = append(out, b.Data)
		}
	}
	return out
}

// flexInt reads a JSON number or a numeric string (the emulator stores
// form-encoded chat_id values as strings).
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*f = 0
		return nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	*f = flexInt(v)
	return err
}

type storedBotMessage struct {
	Time      int64 `json:"time"` // unix milliseconds
	UpdateID  int   `json:"updateId"`
	MessageID int   `json:"messageId"`
	Message   struct {
		ChatID      flexInt `json:"chat_id"`
		Text        string  `json:"text"`
		ParseMode   string  `json:"parse_mode"`
		ReplyMarkup *struct {
			InlineKeyboard [][]Button `json:"inline_keyboard"`
		} `json:"reply_markup"`
	} `json:"message"`
}

func (s storedBotMessage) convert() BotMessage {
	m := BotMessage{MessageID: s.MessageID, UpdateID: s.UpdateID, ChatID: int64(s.Message.ChatID), Text: s.Message.Text,
		ParseMode: s.Message.ParseMode, At: time.UnixMilli(s.Time)}
	if s.Message.ReplyMarkup != nil {
		m.Keyboard = s.Message.ReplyMarkup.InlineKeyboard
	}
	return m
}

// Messages returns the bot's messages to chatID not read before, and marks
// them read.
func (c *Client) Messages(ctx context.Context, chatID int64) ([]BotMessage, error) {
	raw, err := c.post(ctx, "/getUpdates", map[string]any{"token": c.Token, "chatId": strconv.FormatInt(chatID, 10)})
	if err != nil {
		return nil, err
	}
	var stored []storedBotMessage
	if err := json.Unmarshal(raw, &stored); err != nil {
		return nil, fmt.Errorf("getUpdates: %v", err)
	}
	out := make([]BotMessage, 0, len(stored))
	for _, s := range stored {
		out = append(out, s.convert())
	}
	return out, nil
}

// BotHistory returns every message the bot sent (to any chat) that the
// emulator still holds, in their current, possibly edited, form.
func (c *Client) BotHistory(ctx context.Context) ([]BotMessage, error) {
	raw, err := c.post(ctx, "/getUpdatesHistory", map[string]any{"token": c.Token})
	if err != nil {
		return nil, err
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, err
	}
	var out []BotMessage
	for _, it := range items {
		var probe struct {
			Message map[string]json.RawMessage `json:"message"`
		}
		if json.Unmarshal(it, &probe) != nil || probe.Message == nil {
			continue
		}
		if _, ok := probe.Message["chat_id"]; !ok {
			continue // a user's update
		}
		var s storedBotMessage
		if err := json.Unmarshal(it, &s); err != nil {
			return nil, err
		}
		out = append(out, s.convert())
	}
	return out, nil
}

// WaitMessages polls until the bot has sent at least n new messages to
// chatID, and returns all new ones; it fails the test after timeout.
func (c *Client) WaitMessages(t testing.TB, chatID int64, n int, timeout time.Duration) []BotMessage {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var got []BotMessage
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ms, err := c.Messages(ctx, chatID)
		cancel()
		if err != nil {
			t.Fatalf("reading the bot's messages to chat %d: %v", chatID, err)
		}
		got = append(got, ms...)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("chat %d: want %d bot messages within %s, got %d: %+v", chatID, n, timeout, len(got), got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// NoMessages asserts that the bot sends nothing to chatID for d.
func (c *Client) NoMessages(t testing.TB, chatID int64, d time.Duration) {
	t.Helper()
	time.Sleep(d)
	ms, err := c.Messages(context.Background(), chatID)
	if err != nil {
		t.Fatalf("reading the bot's messages to chat %d: %v", chatID, err)
	}
	if len(ms) > 0 {
		t.Fatalf("chat %d: want no bot messages, got %+v", chatID, ms)
	}
}
