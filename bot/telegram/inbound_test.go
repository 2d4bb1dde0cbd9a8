package telegram

import (
	"testing"

	tgbotapi "github.com/go-telegram-bot-api/telegram-bot-api/v5"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"
	"github.com/aftercare-clinic/aftercare/staffgate"
)

const (
	testStaffChat = int64(-1001)
	testStaffUser = int64(900)
)

func textUpdate(id int, chatID int64, chatType string, fromID int64, text string) tgbotapi.Update {
	return tgbotapi.Update{UpdateID: id, Message: &tgbotapi.Message{
		MessageID: 1,
		From:      &tgbotapi.User{ID: fromID, FirstName: "_x*", LastName: "Doe"},
		Chat:      &tgbotapi.Chat{ID: chatID, Type: chatType},
		Text:      text,
	}}
}

func callbackUpdate(id int, chatID int64, data string) tgbotapi.Update {
	return tgbotapi.Update{UpdateID: id, CallbackQuery: &tgbotapi.CallbackQuery{
		ID:      "cb1",
		From:    &tgbotapi.User{ID: chatID, FirstName: "Ann"},
		Message: &tgbotapi.Message{MessageID: 5, Chat: &tgbotapi.Chat{ID: chatID, Type: "private"}, Text: "Ready?"},
		Data:    data,
	}}
}

func TestTranslate(t *testing.T) {
	gate := staffgate.New(staffgate.Rules{Chats: []engine.PatientID{PatientID(testStaffChat)}, Users: []string{staffUser(testStaffUser)}})
	yes := "yes"
	withKeyboard := callbackUpdate(8, 42, "yes")
	withKeyboard.CallbackQuery.Message.ReplyMarkup = &tgbotapi.InlineKeyboardMarkup{InlineKeyboard: [][]tgbotapi.InlineKeyboardButton{{{Text: "Yes", CallbackData: &yes}}}}
	sticker := textUpdate(9, 42, "private", 42, "")
	sticker.Message.Sticker = &tgbotapi.Sticker{FileID: "s"}
	photo := textUpdate(10, 42, "private", 42, "")
	photo.Message.Caption = "my arm is hot"
	edited := tgbotapi.Update{UpdateID: 11, EditedMessage: textUpdate(0, 42, "private", 42, "and chest pain").Message}
	staffCallback := callbackUpdate(12, testStaffChat, "ack:3")
	staffCallback.CallbackQuery.From.ID = 77
	staffCallback.CallbackQuery.Message.Chat.Type = "supergroup"
	fromBot := textUpdate(13, 42, "private", 42, "hi")
	fromBot.Message.From.IsBot = true

	for _, tc := range []struct {
		name    string
		u       tgbotapi.Update
		kind    routeKind
		inbound service.Inbound
		staff   service.StaffInbound
	}{
		{name: "patient text", u: textUpdate(1, 42, "private", 42, "sore arm"), kind: routePatient,
			inbound: service.Inbound{Patient: "telegram:42", Text: "sore arm", DedupeKey: "telegram:update:1", DisplayName: "_x* Doe"}},
		{name: "deep link passed through", u: textUpdate(2, 42, "private", 42, "/start v_ABC-123"), kind: routePatient,
			inbound: service.Inbound{Patient: "telegram:42", Text: "/start v_ABC-123", Invite: "v_ABC-123", DedupeKey: "telegram:update:2", DisplayName: "_x* Doe"}},
		{name: "deep link with bot name", u: textUpdate(3, 42, "private", 42, "/start@AftercareBot v1"), kind: routePatient,
			inbound: service.Inbound{Patient: "telegram:42", Text: "/start v1", Invite: "v1", DedupeKey: "telegram:update:3", DisplayName: "_x* Doe"}},
		{name: "stop and help are patient commands", u: textUpdate(4, 42, "private", 42, "/stop"), kind: routePatient,
			inbound: service.Inbound{Patient: "telegram:42", Text: "/stop", DedupeKey: "telegram:update:4", DisplayName: "_x* Doe"}},
		{name: "staff command from a patient is refused", u: textUpdate(5, 42, "private", 42, "/ack 12"), kind: routeRefuse},
		{name: "staff chat", u: textUpdate(6, testStaffChat, "supergroup", 77, "/ack 12"), kind: routeStaff,
			staff: service.StaffInbound{Staff: "telegram:77", Channel: "telegram:-1001", Text: "/ack 12", DedupeKey: "telegram:update:6"}},
		{name: "staff user in private", u: textUpdate(7, testStaffUser, "private", testStaffUser, "/open"), kind: routeStaff,
			staff: service.StaffInbound{Staff: "telegram:900", Channel: "telegram:900", Text: "/open", DedupeKey: "telegram:update:7"}},
		{name: "button press", u: withKeyboard, kind: routePatient,
			inbound: service.Inbound{Patient: "telegram:42", Text: "Yes", Choice: "yes", DedupeKey: "telegram:update:8", DisplayName: "Ann"}},
		{name: "button press without keyboard", u: callbackUpdate(8, 42, "no"), kind: routePatient,
			inbound: service.Inbound{Patient: "telegram:42", Choice: "no", DedupeKey: "telegram:update:8", DisplayName: "Ann"}},
		{name: "sticker becomes empty text", u: sticker, kind: routePatient,
			inbound: service.Inbound{Patient: "telegram:42", DedupeKey: "telegram:update:9", DisplayName: "_x* Doe"}},
		{name: "photo caption is read", u: photo, kind: routePatient,
			inbound: service.Inbound{Patient: "telegram:42", Text: "my arm is hot", DedupeKey: "telegram:update:10", DisplayName: "_x* Doe"}},
		{name: "edited message is passed on", u: edited, kind: routePatient,
			inbound: service.Inbound{Patient: "telegram:42", Text: "and chest pain", DedupeKey: "telegram:update:11", DisplayName: "_x* Doe"}},
		{name: "staff button", u: staffCallback, kind: routeStaff,
			staff: service.StaffInbound{Staff: "telegram:77", Channel: "telegram:-1001", Choice: "ack:3", DedupeKey: "telegram:update:12"}},
		{name: "other group ignored", u: textUpdate(14, -5, "group", 42, "hi all"), kind: routeIgnore},
		{name: "every staffgate command is refused from a patient", u: textUpdate(17, 42, "private", 42, "/login"), kind: routeRefuse},
		{name: "a staff user in another group is not taken as staff", u: textUpdate(18, -5, "group", testStaffUser, "/open"), kind: routeIgnore},
		{name: "bot ignored", u: fromBot, kind: routeIgnore},
		{name: "sticker in staff chat ignored", u: func() tgbotapi.Update {
			u := textUpdate(15, testStaffChat, "supergroup", 77, "")
			u.Message.Sticker = &tgbotapi.Sticker{FileID: "s"}
			return u
		}(), kind: routeIgnore},
		{name: "unknown update ignored", u: tgbotapi.Update{UpdateID: 16}, kind: routeIgnore},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := translate(tc.u, gate)
			if r.kind != tc.kind {
				t.Fatalf("kind = %v, want %v (reason %q)", r.kind, tc.kind, r.reason)
			}
			if r.inbound != tc.inbound {
				t.Fatalf("inbound = %+v, want %+v", r.inbound, tc.inbound)
			}
			if r.staff != tc.staff {
				t.Fatalf("staff = %+v, want %+v", r.staff, tc.staff)
			}
		})
	}
}

// TestTranslateInvite checks which patient texts present an invite: a deep
// link t.me/BOT?start=TOKEN arrives as "/start TOKEN", with the bot's name
// in clients that add it; anything else after /start is the patient's text
// and no invite, so triage reads it.
func TestTranslateInvite(t *testing.T) {
	gate := staffgate.New(staffgate.Rules{})
	for _, tc := range []struct {
		text, invite string
	}{
		{"/start abc", "abc"},
		{"/start", ""},
		{"/start@AftercareBot abc", "abc"},
		{"/start@AftercareBot", ""},
		{"  /start   abc  ", "abc"},
		{"/start ab$c", ""},
		{"/start I fainted", ""},
		{"/START abc", ""},
		{"/stop abc", ""},
		{"/help@AftercareBot abc", ""},
		{"abc", ""},
		{"please /start abc", ""},
	} {
		t.Run(tc.text, func(t *testing.T) {
			r := translate(textUpdate(1, 42, "private", 42, tc.text), gate)
			if r.kind != routePatient {
				t.Fatalf("kind = %v, want a patient message (reason %q)", r.kind, r.reason)
			}
			if r.inbound.Invite != tc.invite {
				t.Errorf("Invite = %q, want %q", r.inbound.Invite, tc.invite)
			}
		})
	}
	// A button press never presents an invite, whatever its label says.
	cb := callbackUpdate(2, 42, "/start abc")
	if r := translate(cb, gate); r.inbound.Invite != "" {
		t.Errorf("button press: Invite = %q, want none", r.inbound.Invite)
	}
}
