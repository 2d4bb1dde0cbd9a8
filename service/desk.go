package service

import (
	"context"
	"errors"
	"fmt"
	"strings"

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
// store.ErrNotFound when the patient is not on record.
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
// record; store.ErrNotFound (wrapped) for anyone else, so a made-up ID
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
// from Config.StaffLogin, which also decides who may have one.
func (s *Service) staffLogin(ctx context.Context, who string) (string, error) {
	if s.cfg.StaffLogin == nil {
		return "", &staffError{"the staff desk is not enabled (set web.listen in the configuration)"}
	}
	link, err := s.cfg.StaffLogin(ctx, who)
	if err != nil {
		var refused interface{ StaffRefusal() string }
		if errors.As(err, &refused) {
			return "", &staffError{refused.StaffRefusal()}
		}
		return "", err
	}
	return "Your sign-in link for the staff desk (one use, valid 10 minutes; do not forward it):\n" + link, nil
}
