package service

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/staffgate"
	"github.com/aftercare-clinic/aftercare/store/storage"
)

// StaffStore is what staff commands read and write.
type StaffStore interface {
	// Applied reports whether an update key was already committed.
	Applied(key string) (bool, error)
	// ApplyStaff commits a command's answers, invite and key once per key.
	ApplyStaff(ctx context.Context, st storage.StaffStep) (bool, error)
	EscalationStore
	// Patients calls fn with every stored patient state (/today).
	Patients(fn func(engine.State) error) error
	// PatientRecord returns one patient's record (/patient, /pause).
	PatientRecord(p engine.PatientID) (storage.Record, error)
	// Audit returns the audit trail (/audit); AppendAudit records a read.
	Audit() ([]engine.Audit, error)
	AppendAudit(ctx context.Context, as ...engine.Audit) error
}

// StaffInbound is a message or button press from the clinic's staff, in a
// configured staff chat or from a configured staff user. Adapters only pass
// it on when the sender is configured as staff; anyone else is refused by
// the adapter with a short reply and never reaches the service. It is
// declared here, beside ReceiveStaff, for the same reason as Inbound: it is
// what a platform hands the service.
type StaffInbound struct {
	// Staff identifies the staff member ("telegram:42", "discord:1234"), for the audit trail.
	Staff string
	// Channel is where to answer (the staff chat or channel).
	Channel engine.PatientID
	// Text is the command as typed ("/ack 12", "/open").
	Text string
	// Choice is a pressed button's payload ("ack:12").
	Choice string
	// DedupeKey identifies the platform update, as for Inbound.
	DedupeKey string
}

// ReceiveStaff handles a command or button press from clinic staff and
// answers in the channel it came from, except for /login, whose link is a
// credential and only ever goes privately to the asker (see staffLogin). Which commands exist, and who is
// staff, is decided in package staffgate; this file implements them:
//
//	/open                     open escalations, oldest first
//	/ack N                    acknowledge escalation N (or press its button)
//	/resolve N [note]         close escalation N
//	/today                    patients followed up now, with check-in status
//	/patient ID               one patient's timeline
//	/pause ID, /resume ID     stop or restart a patient's check-ins
//	/visit TREATMENT AREA [acute] [child] [ago=2h] [tz=Zone] [lang=xx]
//	                          record a visit; answers with a one-time invite
//	/audit [N]                the last N audit lines
//	/login                    a one-time sign-in link to the staff desk,
//	                          sent only to the asker's private chat
//
// A command is applied once per platform update: an update whose
// DedupeKey was already applied (a redelivery after a lost confirmation or
// a restart) is ignored, and the command's answer, any invite it created
// and the key are committed in one transaction, exactly as for patient
// updates. Commands that change a patient or an escalation commit that
// change first; run again after a crash in between they find it done
// ("already acknowledged"), so nothing happens twice.
func (s *Service) ReceiveStaff(ctx context.Context, in StaffInbound) error {
	if in.Channel == "" {
		return errors.New("service: staff inbound without channel")
	}
	if in.DedupeKey != "" {
		done, err := s.store.Applied(in.DedupeKey)
		if err != nil {
			return fmt.Errorf("service: staff command: %w", err)
		}
		if done {
			s.log.Debug("staff command skipped (already applied)", "from", in.Staff)
			return nil
		}
	}
	if g := s.cfg.StaffGate; g != nil && !g.Staff(staffgate.Who{User: in.Staff, Chat: in.Channel}) {
		s.log.Warn("staff command refused", "from", in.Staff)
		return s.answerStaff(ctx, in, "Sorry, only the clinic's staff can use staff commands.", nil)
	}
	text, _ := engine.Sanitize(in.Text)
	if in.Choice != "" {
		choice, _ := engine.Sanitize(in.Choice)
		text = strings.Replace(choice, ":", " ", 1) // an unknown button answers the help
		if cmd, ok := staffgate.ButtonCommand(choice); ok {
			text = cmd
		}
	}
	c, args, known := staffgate.Parse(text)
	if !known {
		return s.answerStaff(ctx, in, staffgate.Help(), nil)
	}
	cmd := c.Name
	var reply string
	var inv *engine.Invite
	var private *engine.Outbound // a credential for the asker alone (/login)
	var err error
	switch cmd {
	case "open":
		reply, err = s.listOpen()
	case "ack":
		reply, err = s.setStatus(ctx, args, in.Staff, "acknowledged", "")
	case "resolve":
		note := ""
		if len(args) > 1 {
			note = strings.Join(args[1:], " ")
		}
		reply, err = s.setStatus(ctx, args, in.Staff, "resolved", note)
	case "today":
		reply, err = s.listToday()
	case "patient":
		reply, err = s.timeline(ctx, args, in.Staff)
	case "pause", "resume":
		reply, err = s.pause(ctx, args, cmd, in.Staff)
	case "visit":
		reply, inv, err = s.staffVisit(args)
	case "audit":
		reply, err = s.auditTail(args)
	case "login":
		reply, private, err = s.staffLogin(ctx, in, s.clock.Now())
	default:
		// In staffgate.Commands but not implemented here: a test keeps
		// the two in step.
		reply = staffgate.Help()
	}
	if err != nil {
		s.log.Error("staff command failed", "command", cmd, "err", err)
		reply = "That didn't work: " + userError(err)
		inv, private = nil, nil
	}
	// An empty reply: answered by a notice to every staff channel, or, for
	// a private message, by the dispatcher once it is delivered; the
	// update key is still recorded.
	if private != nil {
		return s.answerStaff(ctx, in, reply, inv, *private)
	}
	return s.answerStaff(ctx, in, reply, inv)
}

// answerStaff commits a staff command's answer (if any), the invite it
// created (if any), private messages for the asker (if any, each to its
// own Destination and never to in.Channel) and the update's dedupe key in
// one transaction, and wakes the dispatchers.
func (s *Service) answerStaff(ctx context.Context, in StaffInbound, reply string, inv *engine.Invite, private ...engine.Outbound) error {
	now := s.clock.Now()
	st := storage.StaffStep{Dedupe: in.DedupeKey, Invite: inv, Now: now}
	if reply != "" {
		st.Messages = []engine.Outbound{s.noticeTo(in.Channel, reply, now)}
	}
	for _, m := range private {
		if !m.Private || m.Destination() == "" {
			return errors.New("service: a staff command's extra message must be private")
		}
		st.Messages = append(st.Messages, m)
	}
	applied, err := s.store.ApplyStaff(ctx, st)
	if err != nil {
		return fmt.Errorf("service: staff command: %w", err)
	}
	if !applied {
		s.log.Debug("staff command skipped (already applied)", "from", in.Staff)
		return nil
	}
	if inv != nil {
		s.log.Info("invite created", "expires", inv.Expires)
	}
	if reply != "" {
		s.kick(in.Channel.Platform())
	}
	for _, m := range private {
		s.kick(m.Destination().Platform())
	}
	return nil
}

// userError shows staff our own sentences, never internals.
func userError(err error) string {
	var ue *staffError
	if errors.As(err, &ue) {
		return ue.msg
	}
	return "an internal error occurred; it has been logged."
}

type staffError struct{ msg string }

func (e *staffError) Error() string { return e.msg }

// noticeTo builds a notice to one staff channel.
func (s *Service) noticeTo(ch engine.PatientID, text string, now time.Time) engine.Outbound {
	m := engine.Outbound{To: engine.StaffAddress, Channel: ch, Kind: engine.KindNotice, Text: engine.Truncate(text, 3800), Created: now}
	if ch == engine.StaffAddress {
		m.Channel = ""
	}
	return m
}

func (s *Service) listOpen() (string, error) {
	es, err := s.store.Escalations()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	now := s.clock.Now()
	for _, e := range es {
		if e.Status == "open" {
			fmt.Fprintf(&b, "#%d %s %s, %s ago: %s\n", e.ID, strings.ToUpper(e.Level.String()), e.Patient, fmtMinutes(now.Sub(e.At)), strings.Join(e.Signs, ", "))
		}
	}
	if b.Len() == 0 {
		return "No open escalations.", nil
	}
	return "Open escalations:\n" + b.String(), nil
}

func (s *Service) setStatus(ctx context.Context, args []string, who, status, note string) (string, error) {
	if len(args) == 0 {
		return "", &staffError{"say which escalation, e.g. /ack 12"}
	}
	id, err := strconv.ParseUint(strings.TrimPrefix(args[0], "#"), 10, 64)
	if err != nil {
		return "", &staffError{fmt.Sprintf("%q is not an escalation number", args[0])}
	}
	now := s.clock.Now()
	var msg string
	_, err = s.store.ApplyEscalation(ctx, id, nil, now, func(e *engine.Escalation) (storage.EscalationUpdate, error) {
		var up storage.EscalationUpdate
		if e.Status == status || e.Status == "resolved" {
			msg = fmt.Sprintf("Escalation #%d is already %s.", id, e.Status)
			return up, nil
		}
		e.Status = status
		if status == "acknowledged" {
			e.AckBy, e.AckAt = who, now
		} else {
			e.ResolvedBy, e.ResolvedAt, e.Note = who, now, engine.Truncate(note, 500)
			if e.AckBy == "" {
				e.AckBy, e.AckAt = who, now
			}
		}
		up.Changed, up.StopLadder = true, true
		up.Audit = []engine.Audit{{At: now, Actor: who, Action: "escalation_" + status, Patient: e.Patient, Detail: fmt.Sprintf("escalation %d", id)}}
		msg = fmt.Sprintf("Escalation #%d (%s) %s by %s.", id, e.Patient, status, who)
		// Everyone sees it, so nobody else calls the patient twice.
		for _, ch := range s.staff {
			m := engine.Outbound{To: engine.StaffAddress, Channel: ch, Kind: engine.KindNotice, Patient: e.Patient, Text: msg, Created: now}
			if ch == engine.StaffAddress {
				m.Channel = ""
			}
			up.Messages = append(up.Messages, m)
			s.kick(ch.Platform())
		}
		return up, nil
	})
	if errors.Is(err, storage.ErrNotFound) {
		return "", &staffError{fmt.Sprintf("there is no escalation #%d", id)}
	}
	if err != nil {
		return "", err
	}
	if strings.Contains(msg, "already") {
		return msg, nil
	}
	return "", nil // the notice to all staff channels is the answer
}

func (s *Service) listToday() (string, error) {
	now := s.clock.Now()
	var lines []string
	err := s.visitedSince(now.Add(-72*time.Hour), func(st engine.State) error {
		var cks []string
		for _, c := range st.Checkins {
			o := c.Outcome
			if o == "" {
				o = "waiting for an answer"
				if now.Sub(c.Sent) > 6*time.Hour {
					o = "NO ANSWER"
				}
			}
			cks = append(cks, fmt.Sprintf("%vh %s", c.Hours, o))
		}
		if len(cks) == 0 {
			cks = []string{"no check-in yet"}
		}
		flags := ""
		switch {
		case st.Unreachable:
			flags = " UNREACHABLE"
		case st.Stopped:
			flags = " (stopped)"
		case st.Paused:
			flags = " (paused)"
		case st.Consent != "yes":
			flags = " (no consent to check-ins)"
		}
		if !st.Silent.IsZero() && st.LastActive.Before(st.Silent) {
			flags += fmt.Sprintf("; NO ANSWER to any check-in (staff alerted %s ago)", fmtMinutes(now.Sub(st.Silent)))
		}
		lines = append(lines, fmt.Sprintf("%s: %s, %s ago; %s%s", st.Patient, st.Visit.Treatment.Label(),
			now.Sub(st.Visit.At).Round(time.Hour), strings.Join(cks, ", "), flags))
		return nil
	})
	if err != nil {
		return "", err
	}
	if len(lines) == 0 {
		return "No patients in follow-up (visits in the last 72 h).", nil
	}
	sort.Strings(lines)
	return "Patients in follow-up:\n" + strings.Join(lines, "\n"), nil
}

// timeline answers /patient. The read is in the audit trail, with the
// staff member who asked, before the record is shown.
func (s *Service) timeline(ctx context.Context, args []string, who string) (string, error) {
	if len(args) == 0 {
		return "", &staffError{"say which patient, e.g. /patient telegram:123456"}
	}
	r, err := s.store.PatientRecord(engine.PatientID(args[0]))
	if errors.Is(err, storage.ErrNotFound) {
		return "", &staffError{fmt.Sprintf("no patient %s", args[0])}
	}
	if err != nil {
		return "", err
	}
	if err := s.store.AppendAudit(ctx, engine.Audit{At: s.clock.Now(), Actor: who, Action: "patient_viewed", Patient: engine.PatientID(args[0])}); err != nil {
		return "", fmt.Errorf("audit of /patient: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Patient %s\n", r.State.Patient)
	for _, v := range r.Visits {
		fmt.Fprintf(&b, "%s visit: %s, %s (%s)\n", v.At.Format("2006-01-02 15:04"), v.Treatment.Label(), engine.StaffQuote(v.Area), v.Source)
	}
	for _, c := range r.State.Checkins {
		so := "-"
		if c.Soreness != nil {
			so = strconv.Itoa(*c.Soreness) + "/10"
		}
		fmt.Fprintf(&b, "%s %vh check-in: feel %s, soreness %s, signs %s -> %s\n", c.Sent.Format("2006-01-02 15:04"), c.Hours, c.Feel, so, c.Signs, c.Outcome)
	}
	for _, e := range r.Escalations {
		fmt.Fprintf(&b, "%s escalation #%d %s (%s): %s\n", e.At.Format("2006-01-02 15:04"), e.ID, e.Level, e.Status, strings.Join(e.Signs, ", "))
	}
	for _, a := range r.Audit {
		fmt.Fprintf(&b, "%s %s %s %s\n", a.At.Format("2006-01-02 15:04"), a.Actor, a.Action, a.Detail)
	}
	return b.String(), nil
}

func (s *Service) pause(ctx context.Context, args []string, action, who string) (string, error) {
	if len(args) == 0 {
		return "", &staffError{"say which patient, e.g. /" + action + " telegram:123456"}
	}
	id := engine.PatientID(args[0])
	if _, err := s.store.PatientRecord(id); errors.Is(err, storage.ErrNotFound) {
		return "", &staffError{fmt.Sprintf("no patient %s", id)}
	}
	if _, err := s.apply(ctx, id, "", nil, engine.Event{Kind: engine.EventStaff, Action: action, Actor: who}); err != nil {
		return "", err
	}
	return fmt.Sprintf("Check-ins for %s: %sd.", id, action), nil
}

// staffVisit prepares the invite for a visit; the caller commits it with
// the answer, so a redelivered /visit cannot create a second one.
func (s *Service) staffVisit(args []string) (string, *engine.Invite, error) {
	v, err := ParseVisitArgs(args, s.clock.Now())
	if err != nil {
		return "", nil, &staffError{err.Error()}
	}
	inv, err := s.newInvite(v, s.cfg.InviteTTL)
	if err != nil {
		return "", nil, err
	}
	links := []string{"code: " + inv.Token}
	if s.cfg.InviteLinks != nil {
		links = s.cfg.InviteLinks(inv.Token)
	}
	return fmt.Sprintf("Visit recorded (%s, %s). One-time invite for the patient, valid until %s:\n%s",
		v.Treatment.Label(), v.Area, inv.Expires.Format("Mon 2 Jan 15:04 MST"), strings.Join(links, "\n")), &inv, nil
}

// ParseVisitArgs reads "TREATMENT AREA... [acute] [child] [ago=2h]
// [tz=Zone] [lang=xx]" as typed by staff or on the command line.
func ParseVisitArgs(args []string, now time.Time) (engine.Visit, error) {
	if len(args) == 0 {
		return engine.Visit{}, errors.New("usage: /visit TREATMENT AREA [acute] [child] [ago=2h] [tz=America/Chicago] [lang=en]; TREATMENT is acupuncture, electroacupuncture or dry_needling")
	}
	v := engine.Visit{At: now, Source: "clinic", Treatment: engine.Treatment(strings.ToLower(strings.ReplaceAll(args[0], "-", "_")))}
	if !v.Treatment.Valid() {
		return v, fmt.Errorf("unknown treatment %q: use acupuncture, electroacupuncture or dry_needling", args[0])
	}
	var area []string
	for _, a := range args[1:] {
		k, val, kv := strings.Cut(a, "=")
		switch {
		case a == "acute":
			v.Acute = true
		case a == "child":
			v.Child = true
		case kv && k == "ago":
			d, err := time.ParseDuration(val)
			if err != nil || d < 0 || d > 14*24*time.Hour {
				return v, fmt.Errorf("ago=%s: use a duration like 90m or 2h (at most 14 days)", val)
			}
			v.At = now.Add(-d)
		case kv && k == "tz":
			if _, err := time.LoadLocation(val); err != nil {
				return v, fmt.Errorf("tz=%s: not an IANA time zone (e.g. America/Chicago)", val)
			}
			v.TZ = val
		case kv && k == "lang":
			v.Lang = val
		default:
			area = append(area, a)
		}
	}
	v.Area = engine.Truncate(strings.Join(area, " "), 60)
	return v, nil
}

func (s *Service) auditTail(args []string) (string, error) {
	n := 20
	if len(args) > 0 {
		if v, err := strconv.Atoi(args[0]); err == nil && v > 0 && v <= 200 {
			n = v
		}
	}
	as, err := s.store.Audit()
	if err != nil {
		return "", err
	}
	if len(as) > n {
		as = as[len(as)-n:]
	}
	var b strings.Builder
	for _, a := range as {
		fmt.Fprintf(&b, "%s %s %s %s %s\n", a.At.Format("2006-01-02 15:04"), a.Actor, a.Action, a.Patient, a.Detail)
	}
	if b.Len() == 0 {
		return "The audit trail is empty.", nil
	}
	return b.String(), nil
}

// fmtMinutes writes a duration for people: "10 min", "2 h 5 min".
func fmtMinutes(d time.Duration) string {
	m := int(d.Round(time.Minute) / time.Minute)
	switch {
	case m < 60:
		return fmt.Sprintf("%d min", m)
	case m%60 == 0:
		return fmt.Sprintf("%d h", m/60)
	}
	return fmt.Sprintf("%d h %d min", m/60, m%60)
}
