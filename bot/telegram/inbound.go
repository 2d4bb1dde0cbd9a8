package telegram

import (
	"context"
	"strconv"
	"strings"

	tgbotapi "github.com/go-telegram-bot-api/telegram-bot-api/v5"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"
	"github.com/aftercare-clinic/aftercare/staffgate"
)

// Receiver is what the adapter hands translated updates to: the service.
// Both methods block until the update's effects are committed and return nil
// for a DedupeKey that was already committed, so the adapter may confirm the
// update to Telegram as soon as they return nil, and may safely deliver the
// same update again after a crash. They must be safe for concurrent use (the
// webhook handler calls them from several requests at once, one chat at a
// time).
type Receiver interface {
	// Receive takes a patient's message or button press.
	Receive(ctx context.Context, in service.Inbound) error
	// ReceiveStaff takes a message or button press from clinic staff.
	ReceiveStaff(ctx context.Context, in service.StaffInbound) error
}

// routeKind says what to do with one update.
type routeKind int

const (
	routeIgnore  routeKind = iota // nothing to do (logged with the reason)
	routePatient                  // Receive(inbound)
	routeStaff                    // ReceiveStaff(staff)
	routeRefuse                   // a non-staff user tried a staff command: refuse politely
)

// route is the translation of one update, decided without any I/O so it can
// be tested as a table.
type route struct {
	kind    routeKind
	reason  string // why it is ignored, for the log (never user content)
	chatID  int64
	inbound service.Inbound
	staff   service.StaffInbound
	// callback is set for a button press, to acknowledge it.
	callback *tgbotapi.CallbackQuery
	// label is the pressed button's label, when known.
	label string
}

// DedupeKey returns the key that identifies a Telegram update to the service.
func DedupeKey(updateID int) string { return "telegram:update:" + strconv.Itoa(updateID) }

// PatientID returns the PatientID of a private chat with the bot.
func PatientID(chatID int64) engine.PatientID {
	return engine.NewPatientID(PlatformName, strconv.FormatInt(chatID, 10))
}

// translate decides what an update means; gate says who is staff.
func translate(u tgbotapi.Update, gate *staffgate.Gate) route {
	key := DedupeKey(u.UpdateID)
	switch {
	case u.CallbackQuery != nil:
		return translateCallback(u.CallbackQuery, key, gate)
	case u.Message != nil:
		return translateMessage(u.Message, key, gate)
	case u.EditedMessage != nil:
		// An edit can add a red flag ("...and now chest pain"); it is
		// passed on as a new message rather than silently dropped.
		return translateMessage(u.EditedMessage, key, gate)
	default:
		return route{kind: routeIgnore, reason: "unsupported update type"}
	}
}

// staffUser is the staffgate user ID of Telegram user id.
func staffUser(id int64) string { return PlatformName + ":" + strconv.FormatInt(id, 10) }

// fromStaff reports whether user fromID (0: unknown) speaks as staff in
// chatID, as gate decides, where Telegram staff give commands: the staff
// group, or a private chat with the bot.
func fromStaff(gate *staffgate.Gate, chatID, fromID int64, private bool) bool {
	who := staffgate.Who{Chat: PatientID(chatID)}
	if fromID != 0 {
		who.User = staffUser(fromID)
	}
	return gate.Staff(who) && (private || gate.StaffChat(who.Chat))
}

func translateMessage(m *tgbotapi.Message, key string, gate *staffgate.Gate) route {
	if m.Chat == nil {
		return route{kind: routeIgnore, reason: "message without chat"}
	}
	r := route{chatID: m.Chat.ID}
	var fromID int64
	if m.From != nil {
		fromID = m.From.ID
		if m.From.IsBot {
			r.kind, r.reason = routeIgnore, "message from a bot"
			return r
		}
	}
	text := m.Text
	if text == "" {
		// A photo or document with a caption still says something the
		// engine must read ("my arm looks like this, it's hot").
		text = m.Caption
	}
	if fromStaff(gate, m.Chat.ID, fromID, m.Chat.IsPrivate()) {
		if text == "" {
			r.kind, r.reason = routeIgnore, "non-text message in staff chat"
			return r
		}
		r.kind = routeStaff
		r.staff = service.StaffInbound{
			Staff:     PlatformName + ":" + strconv.FormatInt(fromID, 10),
			Channel:   PatientID(m.Chat.ID),
			Text:      text,
			DedupeKey: key,
		}
		return r
	}
	if !m.Chat.IsPrivate() {
		r.kind, r.reason = routeIgnore, "message in a group that is not the staff chat"
		return r
	}
	if staffgate.IsCommand(text) {
		r.kind = routeRefuse
		return r
	}
	r.kind = routePatient
	text = normalizeCommandText(text)
	r.inbound = service.Inbound{
		Patient: PatientID(m.Chat.ID),
		Text:    text,
		// A deep link t.me/BOT?start=TOKEN arrives as the text "/start
		// TOKEN" ("/start@BOT TOKEN" in a client that names the bot, folded
		// above), exactly what a patient who types the code sends.
		Invite:      service.StartInvite(text),
		DedupeKey:   key,
		DisplayName: displayName(m.From),
		Lang:        languageCode(m.From),
	}
	return r
}

func translateCallback(q *tgbotapi.CallbackQuery, key string, gate *staffgate.Gate) route {
	r := route{callback: q}
	var fromID int64
	if q.From != nil {
		fromID = q.From.ID
	}
	chatID := fromID
	private := true
	if q.Message != nil && q.Message.Chat != nil {
		chatID = q.Message.Chat.ID
		private = q.Message.Chat.IsPrivate()
	}
	r.chatID = chatID
	if chatID == 0 {
		r.kind, r.reason = routeIgnore, "callback without chat or user"
		return r
	}
	r.label = buttonLabel(q.Message, q.Data)
	if fromStaff(gate, chatID, fromID, private) {
		r.kind = routeStaff
		r.staff = service.StaffInbound{
			Staff:     PlatformName + ":" + strconv.FormatInt(fromID, 10),
			Channel:   PatientID(chatID),
			Text:      r.label,
			Choice:    q.Data,
			DedupeKey: key,
		}
		return r
	}
	if !private {
		r.kind, r.reason = routeIgnore, "button press in a group that is not the staff chat"
		return r
	}
	r.kind = routePatient
	r.inbound = service.Inbound{
		Patient:     PatientID(chatID),
		Text:        r.label,
		Choice:      q.Data,
		DedupeKey:   key,
		DisplayName: displayName(q.From),
		Lang:        languageCode(q.From),
	}
	return r
}

// displayName joins a user's first and last name (personal data: shown to
// staff in alerts, never logged).
func displayName(u *tgbotapi.User) string {
	if u == nil {
		return ""
	}
	return strings.TrimSpace(u.FirstName + " " + u.LastName)
}

// languageCode is the user's Telegram client language ("es", "en-GB"), a
// hint for the bot's language; "" when unknown.
func languageCode(u *tgbotapi.User) string {
	if u == nil {
		return ""
	}
	return u.LanguageCode
}
