package service

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
)

// This file is what the staff desk (package desk) asks of the service: the
// same acknowledge and resolve steps as the chat button and /ack, a staff
// reply to a patient through the outbox, and the /login staff command.

// ErrNoEscalation is returned by Acknowledge and Resolve for an escalation
// number that does not exist (or was erased with its patient).
var ErrNoEscalation = errors.New("no such escalation")

// Acknowledge marks escalation id as taken by who, exactly as the chat's
// Acknowledge button and /ack do: the ladder stops and every staff channel
// is told who took it. It returns a sentence for staff when nothing changed
// (already acknowledged or resolved), "" otherwise.
func (s *Service) Acknowledge(ctx context.Context, id uint64, who string) (string, error) {
	return s.deskStatus(ctx, id, who, "acknowledged", "")
}

// Resolve closes escalation id with a note, as /resolve does.
func (s *Service) Resolve(ctx context.Context, id uint64, who, note string) (string, error) {
	return s.deskStatus(ctx, id, who, "resolved", note)
}

func (s *Service) deskStatus(ctx context.Context, id uint64, who, status, note string) (string, error) {
	if strings.TrimSpace(who) == "" {
		return "", errors.New("service: escalation change without a staff member")
	}
	msg, err := s.setStatus(ctx, []string{fmt.Sprint(id)}, who, status, note)
	var se *staffError
	if errors.As(err, &se) && strings.HasPrefix(se.msg, "there is no escalation") {
		return "", fmt.Errorf("escalation %d: %w", id, ErrNoEscalation)
	}
	return msg, err
}

// MaxReplyRunes bounds a staff reply, well under every platform's limit
// once the clinic-team heading is added.
const MaxReplyRunes = 2000

// ReplyHeading starts every staff reply, so the patient can tell a person
// at the clinic from the bot.
const ReplyHeading = "Message from the clinic team:\n"

// ErrEmptyReply is returned by Reply for a reply with no text.
var ErrEmptyReply = errors.New("the reply is empty")

// Reply sends a message from staff member who to the patient, through the
// outbox like every other message (so pacing, retries and the patient's
// platform apply), marked as from the clinic team. It is an engine step
// (the "reply" staff action), so the message, its transcript line, its
// audit line ("staff_reply", actor who, never the text) and the hold on
// automatic follow-ups while a person talks with the patient are
// committed together, in either store. It returns an error wrapping
// storage.ErrNotFound when the patient is not on record.
func (s *Service) Reply(ctx context.Context, patient engine.PatientID, who, text string) error {
	text, _ = engine.Sanitize(text)
	text = strings.TrimSpace(text)
	if text == "" {
		return ErrEmptyReply
	}
	text = engine.Truncate(text, MaxReplyRunes)
	return s.deskStep(ctx, patient, engine.Event{Kind: engine.EventStaff, Action: "reply", Actor: who, Text: ReplyHeading + text})
}

// Pause stops (action "pause") or restarts ("resume") the patient's
// automatic check-ins, as /pause and /resume do, audited with who.
func (s *Service) Pause(ctx context.Context, patient engine.PatientID, who, action string) error {
	if action != "pause" && action != "resume" {
		return fmt.Errorf("service: unknown action %q", action)
	}
	return s.deskStep(ctx, patient, engine.Event{Kind: engine.EventStaff, Action: action, Actor: who})
}

// Erase deletes everything stored about the patient, as the patient's own
// /forget does, leaving one anonymous audit line and one naming who.
func (s *Service) Erase(ctx context.Context, patient engine.PatientID, who string) error {
	return s.deskStep(ctx, patient, engine.Event{Kind: engine.EventStaff, Action: "erase", Actor: who})
}

// deskStep applies a staff member's action from the desk to a patient on
// record; storage.ErrNotFound (wrapped) for anyone else, so a made-up ID
// never starts a conversation.
func (s *Service) deskStep(ctx context.Context, patient engine.PatientID, ev engine.Event) error {
	if strings.TrimSpace(ev.Actor) == "" {
		return errors.New("service: desk action without a staff member")
	}
	if _, err := s.store.PatientRecord(patient); err != nil {
		return fmt.Errorf("%s %s: %w", ev.Action, patient, err)
	}
	if _, err := s.apply(ctx, patient, "", nil, ev); err != nil {
		return fmt.Errorf("%s %s: %w", ev.Action, patient, err)
	}
	return nil
}

// staffLogin answers /login: a one-time sign-in link to the staff desk,
// from Config.StaffLogin, which also decides who may have one. The link
// is a credential, so it is only ever delivered privately: as a Private
// message to the staff member's own private chat with the bot (when they
// asked there, that is where the answer goes as before; Discord's
// adapter opens their DM). When they asked in a shared staff chat, that
// chat sees no link: the private message carries it as Origin, and the
// dispatcher tells it there whether the link reached them (see
// privateOutcome). reply is what to answer in the chat at once ("" when
// the dispatcher answers later).
func (s *Service) staffLogin(ctx context.Context, in StaffInbound, now time.Time) (reply string, private *engine.Outbound, err error) {
	if s.cfg.StaffLogin == nil {
		return "", nil, &staffError{"the staff desk is not enabled (set web.listen in the configuration)"}
	}
	person := engine.PatientID(in.Staff)
	if person.Platform() == "" || person.Platform() != in.Channel.Platform() || person.Address() == "" {
		// No private chat to send it to: never fall back to the channel.
		return "", nil, &staffError{"a sign-in link can only be sent to you privately; " + loginHowTo}
	}
	link, err := s.cfg.StaffLogin(ctx, in.Staff)
	if err != nil {
		var refused interface{ StaffRefusal() string }
		if errors.As(err, &refused) {
			return "", nil, &staffError{refused.StaffRefusal()}
		}
		return "", nil, err
	}
	m := engine.Outbound{To: person, Channel: person, Kind: engine.KindNotice, Private: true, Created: now,
		Text: "Your sign-in link for the staff desk (one use, valid 10 minutes; do not forward it):\n" + link}
	if in.Channel != person {
		m.Origin = in.Channel
	}
	return "", &m, nil
}

// loginHowTo says how to get a sign-in link when the bot could not send
// one privately. On Telegram a bot cannot start a private chat; on
// Discord the member may have closed direct messages from the server.
const loginHowTo = "open a private chat with the bot (on Telegram press Start; on Discord allow direct messages from server members) and ask for /login again."

// privateOutcome is the notice for the shared staff chat a private
// message was asked for in (m.Origin), once its delivery succeeded or was
// refused for good. It names the staff member by ID and never quotes the
// private text. ok is false for Private messages without an Origin.
func (s *Service) privateOutcome(m engine.Outbound, delivered bool, now time.Time) (engine.Outbound, bool) {
	if !m.Private || m.Origin == "" {
		return engine.Outbound{}, false
	}
	text := fmt.Sprintf("Sign-in link for %s sent to them in a private chat with the bot.", m.Destination())
	if !delivered {
		text = fmt.Sprintf("Sign-in link for %s not sent: the bot cannot message them privately. To get one, %s", m.Destination(), loginHowTo)
	}
	return s.noticeTo(m.Origin, text, now), true
}
