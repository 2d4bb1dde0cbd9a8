package telegram

import (
	"strings"
	"unicode/utf8"

	tgbotapi "github.com/go-telegram-bot-api/telegram-bot-api/v5"

	"github.com/aftercare-clinic/aftercare/engine"
)

// Telegram limits.
const (
	// MaxMessageUTF16 is Telegram's limit on a message text, counted in
	// UTF-16 code units (an emoji outside the BMP counts twice).
	MaxMessageUTF16 = 4096
	// MaxCallbackData is Telegram's limit on a button's callback data, in bytes.
	MaxCallbackData = 64
)

// cleanText makes a text safe to send: valid UTF-8 (Telegram rejects
// anything else) with NUL bytes removed.
func cleanText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "")
}

// Keyboard layout: buttons share a row while the row's labels fit in
// rowWidth characters (counting two for each button's padding), up to
// maxPerRow buttons, so "Yes"/"No" sit side by side and long answers get a
// row of their own.
const (
	rowWidth  = 30
	maxPerRow = 4
)

// validCallbackData reports whether a choice ID can be used as callback data:
// 1 to 64 bytes of valid UTF-8.
func validCallbackData(id string) bool {
	return id != "" && len(id) <= MaxCallbackData && utf8.ValidString(id)
}

// buildKeyboard renders choices as an inline keyboard. Choices whose ID
// cannot be callback data are left out and returned, so the caller can log
// them; the message still goes out, since free text works wherever a button
// does. It returns nil when no button remains.
func buildKeyboard(choices []engine.Choice) (*tgbotapi.InlineKeyboardMarkup, []engine.Choice) {
	var rows [][]tgbotapi.InlineKeyboardButton
	var row []tgbotapi.InlineKeyboardButton
	var dropped []engine.Choice
	width := 0
	for _, c := range choices {
		if !validCallbackData(c.ID) {
			dropped = append(dropped, c)
			continue
		}
		label := strings.TrimSpace(cleanText(c.Label))
		if label == "" {
			label = c.ID
		}
		w := utf8.RuneCountInString(label) + 2
		if len(row) > 0 && (width+w > rowWidth || len(row) >= maxPerRow) {
			rows = append(rows, row)
			row, width = nil, 0
		}
		row = append(row, tgbotapi.NewInlineKeyboardButtonData(label, c.ID))
		width += w
	}
	if len(row) > 0 {
		rows = append(rows, row)
	}
	if len(rows) == 0 {
		return nil, dropped
	}
	return &tgbotapi.InlineKeyboardMarkup{InlineKeyboard: rows}, dropped
}

// buttonLabel finds the label of the button whose callback data is data in
// a message's keyboard, or "" when the keyboard is unknown.
func buttonLabel(m *tgbotapi.Message, data string) string {
	if m == nil || m.ReplyMarkup == nil {
		return ""
	}
	for _, row := range m.ReplyMarkup.InlineKeyboard {
		for _, b := range row {
			if b.CallbackData != nil && *b.CallbackData == data {
				return b.Text
			}
		}
	}
	return ""
}

// command splits a message text that starts with "/" into the lower-case
// command name (without a "@botname" suffix) and the rest of the text after
// the first run of spaces. ok is false for text that is not a command.
func command(text string) (name, args string, ok bool) {
	if !strings.HasPrefix(text, "/") || len(text) < 2 {
		return "", "", false
	}
	head, rest := text, ""
	if i := strings.IndexAny(text, " \n\t"); i >= 0 {
		head, rest = text[:i], text[i+1:]
	}
	head = head[1:]
	if i := strings.IndexByte(head, '@'); i >= 0 {
		head = head[:i]
	}
	if head == "" {
		return "", "", false
	}
	return strings.ToLower(head), strings.TrimLeft(rest, " \n\t"), true
}

// patientCommands are the commands a patient may use, written in one form
// for the engine (normalizeCommandText). Staff commands (staffgate) are
// refused outside staff chats; any other command goes to the engine, which
// answers everything.
var patientCommands = map[string]bool{"start": true, "stop": true, "help": true, "forget": true}

// normalizeCommandText rewrites "/start@AftercareBot payload" to
// "/start payload", so the engine sees deep links in one form. Other text is
// returned unchanged.
func normalizeCommandText(text string) string {
	name, args, ok := command(text)
	if !ok || !patientCommands[name] {
		return text
	}
	head := text
	if i := strings.IndexAny(text, " \n\t"); i >= 0 {
		head = text[:i]
	}
	if !strings.Contains(head, "@") {
		return text
	}
	if args == "" {
		return "/" + name
	}
	return "/" + name + " " + args
}
