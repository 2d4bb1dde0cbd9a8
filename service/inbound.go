package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store"
	"github.com/aftercare-clinic/aftercare/store/storage"
)

// Inbound is one thing a patient did on a platform, translated by an adapter:
// a message, or a button press. Adapters fill it and hand it to Receive;
// they never interpret it. It is declared here, beside Receive, because it
// is what a platform hands the service, not an input of the engine: the
// service turns it into an engine.Event (Receive), and what the engine does
// with that is the engine's.
type Inbound struct {
	// Patient is the conversation the message belongs to.
	Patient engine.PatientID
	// Text is what the patient typed (may be empty, huge or invalid UTF-8;
	// the engine copes). For a button press it is the button's label, if known.
	Text string
	// Choice is the pressed button's choice ID, empty for typed text.
	Choice string
	// DedupeKey identifies the platform update ("telegram:update:123",
	// "discord:msg:987"). An Inbound whose key was already committed is
	// acknowledged and ignored, so redelivery after a crash applies nothing twice.
	DedupeKey string
	// DisplayName is the platform's display name for the patient, shown to
	// staff in alerts only. It is personal data: never log it.
	DisplayName string
	// Lang is the platform's language for the user (Telegram
	// language_code, Discord locale), a hint for the bot's language.
	Lang string
	// Invite is the enrollment token the patient presented with this
	// message, in their platform's own form: the payload of a Telegram deep
	// link (t.me/BOT?start=TOKEN), the code of Discord's /aftercare command,
	// or the token of a typed "/start TOKEN" (StartInvite). The adapter
	// fills it, so the service never parses an invite back out of Text;
	// Text keeps what the patient sent, for triage and the transcript.
	// Empty when no invite came with the message. Receive looks up only a
	// token of the form IsInviteToken accepts; any other is ignored and
	// the message is read as text, so nothing an adapter passes here skips
	// triage.
	Invite string
}

// Receive applies a patient's message or button press. It returns once the
// step and the messages it caused are committed, so a platform adapter may
// then confirm the update to its platform. An Inbound whose DedupeKey was
// already applied is ignored and nil is returned. An Invite is resolved by
// the store inside the step's transaction (used once, or found unknown,
// expired or used) and the engine answers what became of it.
func (s *Service) Receive(ctx context.Context, in Inbound) error {
	if in.Patient == "" {
		return errors.New("service: inbound without patient")
	}
	s.cfg.Observer.Received(in.Patient.Platform())
	ev := engine.Event{Kind: engine.EventMessage, Text: in.Text, Choice: in.Choice, DisplayName: in.DisplayName, Lang: in.Lang}
	invite := in.Invite
	if !IsInviteToken(invite) {
		invite = "" // not a token anyone was given: the text is read as it is
	}
	_, err := s.applyInvite(ctx, in.Patient, in.DedupeKey, nil, invite, ev)
	return err
}

// RecordVisit records a visit for a patient as the clinic would, and
// schedules its check-ins.
func (s *Service) RecordVisit(ctx context.Context, id engine.PatientID, v engine.Visit) error {
	if !v.Treatment.Valid() {
		return fmt.Errorf("service: unknown treatment %q (want acupuncture, electroacupuncture or dry_needling)", v.Treatment)
	}
	_, err := s.apply(ctx, id, "", nil, engine.Event{Kind: engine.EventVisit, Visit: &v})
	return err
}

// MarkUnreachable records that a platform refuses delivery to the patient
// for good, which stops check-ins and tells staff.
func (s *Service) MarkUnreachable(ctx context.Context, id engine.PatientID) error {
	_, err := s.apply(ctx, id, "", nil, engine.Event{Kind: engine.EventUnreachable, Platform: id.Platform()})
	return err
}

// StepStore commits patient steps: the stored state is read (raw, to
// compute a step outside the write transaction) and each step is applied
// in one transaction.
type StepStore interface {
	// Apply loads the patient's state, calls fn with it and commits fn's
	// result with everything st asks for, in one transaction; false when
	// nothing was committed (dedupe key seen, timer gone, storage.ErrSkip).
	Apply(ctx context.Context, st storage.Step, fn func(storage.Input) (engine.Result, error)) (bool, error)
	// StateRaw returns a patient's state and its stored bytes (nil when
	// none is stored).
	StateRaw(id engine.PatientID) (engine.State, []byte, error)
}

func (s *Service) apply(ctx context.Context, id engine.PatientID, dedupe string, due *storage.Due, ev engine.Event) (bool, error) {
	return s.applyInvite(ctx, id, dedupe, due, "", ev)
}

func (s *Service) applyInvite(ctx context.Context, id engine.PatientID, dedupe string, due *storage.Due, invite string, ev engine.Event) (bool, error) {
	p := s.locks.acquire(id)
	defer s.locks.release(id, p)
	now := s.clock.Now()
	// The store's latency (Observer.Step) is real elapsed time, not the
	// service clock's: under a virtual or fake clock the commit still takes
	// real milliseconds, and that is what the metric is for. It is the one
	// reading of the system clock in this package.
	start := time.Now()
	// Everything the step needs and leaves behind, in one value: the
	// closure handed to the store captures it alone, one allocation
	// instead of one per variable.
	op := &applyOp{s: s, id: id, ev: ev, now: now}
	out, step := &op.out, op.step
	// Compute the step before the write transaction, so engine and triage
	// work runs in parallel across patients instead of inside bbolt's one
	// writer. The per-patient FIFO means nobody else changes this patient
	// meanwhile; the result is used only if the stored state is still the
	// one it was computed from (Handled counts every step), and recomputed
	// inside the transaction otherwise. Invites resolve inside only.
	var pre *storage.Prepared
	cached, hit := s.states.take(id)
	if invite == "" {
		if !hit {
			if st, raw, err := s.store.StateRaw(id); err == nil {
				cached, hit = &cachedState{raw: raw, st: st}, true
			}
		}
		if hit {
			r := step(cached.st, engine.InviteResult{})
			b, err1 := s.encodeState(r.State)
			ms, err2 := store.EncodeMessages(r.Messages)
			if err1 == nil && err2 == nil {
				op.pre = storage.Prepared{From: cached.raw, Result: r, State: b, Messages: ms}
				pre = &op.pre
				out.sent, out.esc, out.timers = r.Messages, r.Escalation, len(r.Timers) > 0 || s.laddered(r.Escalation)
			}
		}
	}
	var heard *storage.TranscriptLine
	if ev.Kind == engine.EventMessage {
		op.heard = storage.TranscriptLine{At: now, From: storage.FromPatient, Text: ev.Text, Choice: ev.Choice}
		heard = &op.heard
	}
	applied, err := s.store.Apply(ctx, storage.Step{Patient: id, Dedupe: dedupe, Due: due, Invite: invite, Now: now, Prepared: pre, Heard: heard, OnEscalation: s.startLadder(now)},
		func(in storage.Input) (engine.Result, error) {
			res := op.step(in.State, in.Invite) // the stored state changed: recompute
			op.out.sent, op.out.esc, op.out.timers = res.Messages, res.Escalation, len(res.Timers) > 0 || s.laddered(res.Escalation)
			op.out.recomputed = true
			return res, nil
		})
	if err == nil && applied && pre != nil && !out.recomputed && !pre.Result.Erase {
		// The entry taken above is reused for the committed state: no
		// allocation per step (its old contents are not shared: the step
		// that read them has been committed).
		if cached == nil {
			cached = &cachedState{}
		}
		cached.raw, cached.st = pre.State, pre.Result.State
		s.states.put(id, cached)
	}
	sent, esc, timers := out.sent, out.esc, out.timers
	s.cfg.Observer.Step(time.Since(start))
	if err != nil {
		s.log.Error("step failed", "patient", id, "event", ev.Kind, "err", err)
		return false, err
	}
	if !applied {
		s.log.Debug("step skipped (already applied)", "patient", id, "event", ev.Kind)
		return false, nil
	}
	s.kickFor(sent)
	if esc != nil {
		s.cfg.Observer.Escalated(esc.Level)
		// The level and a count only: sign names beside a patient ID are
		// health data, and logs are not the place for it.
		s.log.Warn("escalation", "patient", id, "level", esc.Level.String(), "signs", len(esc.Signs))
	}
	if due != nil && engine.TimerKindOf(due.Key) == engine.TimerCheckin {
		s.cfg.Observer.CheckinFired(now.Sub(due.At))
	}
	if s.log.Enabled(ctx, slog.LevelDebug) { // the arguments cost allocations even when not logged
		s.log.Debug("step", "patient", id, "event", ev.Kind, "messages", len(sent))
	}
	if timers {
		s.Wake()
	}
	return true, nil
}

// applyOp is one step being applied: its inputs, the prepared result and
// transcript line handed to the store, and what the step did.
type applyOp struct {
	s   *Service
	id  engine.PatientID
	ev  engine.Event
	now time.Time
	pre storage.Prepared
	// heard is the patient's message as it goes into the transcript.
	heard storage.TranscriptLine
	out   struct {
		sent       []engine.Outbound
		esc        *engine.Escalation
		timers     bool // the step (re)schedules timers: the scheduler must look again
		recomputed bool
	}
}

// step runs the engine on st, with the invite the store resolved.
func (o *applyOp) step(st engine.State, inv engine.InviteResult) engine.Result {
	ev := o.ev
	ev.Invite = inv
	res := o.s.engine.Step(o.id, st, ev, o.now)
	res.Messages = o.s.fanOut(res.Messages)
	return res
}

// stateEncoder is a store that keeps states in an encoding of its own (the
// bbolt store's binary form); a prepared step must hand it that encoding,
// since it compares and stores the bytes as they are.
type stateEncoder interface {
	EncodeState(engine.State) ([]byte, error)
}

// encodeState encodes a prepared step's state as the store keeps it: its
// own encoding when it has one, else JSON.
func (s *Service) encodeState(st engine.State) ([]byte, error) {
	if e, ok := s.store.(stateEncoder); ok {
		return e.EncodeState(st)
	}
	return json.Marshal(st)
}

// kickFor wakes the dispatcher of every platform a message of sent goes
// to, at once (kickUrgent) where an escalation or alert is among them.
func (s *Service) kickFor(sent []engine.Outbound) {
	// A step sends to one or two platforms: a small array, not a map.
	type dest struct {
		platform string
		urgent   bool
	}
	var buf [4]dest
	ds := buf[:0]
next:
	for _, m := range sent {
		pl, urgent := m.Destination().Platform(), m.Kind.Priority() == 0
		for i := range ds {
			if ds[i].platform == pl {
				ds[i].urgent = ds[i].urgent || urgent
				continue next
			}
		}
		ds = append(ds, dest{pl, urgent})
	}
	for _, d := range ds {
		if d.urgent {
			s.kickUrgent(d.platform)
		} else {
			s.kick(d.platform)
		}
	}
}

// fanOut turns each staff message into one message per staff channel. A
// step without staff messages (most) keeps its slice as it is.
func (s *Service) fanOut(ms []engine.Outbound) []engine.Outbound {
	staff := false
	for _, m := range ms {
		staff = staff || m.To == engine.StaffAddress
	}
	if !staff {
		return ms
	}
	out := make([]engine.Outbound, 0, len(ms)+len(s.staff))
	for _, m := range ms {
		if m.To != engine.StaffAddress {
			out = append(out, m)
			continue
		}
		for _, ch := range s.staff {
			c := m
			if ch != engine.StaffAddress {
				c.Channel = ch
			}
			out = append(out, c)
		}
	}
	return out
}

// locks is the per-patient FIFO: steps for one patient run one at a time,
// in the order their callers arrived (a ticket each).
type locks struct {
	mu sync.Mutex
	m  map[engine.PatientID]*plock
	// free keeps released locks for reuse: most steps find their
	// patient's lock unused, and would otherwise allocate one each time.
	free []*plock
}

// maxFreeLocks bounds the locks kept for reuse.
const maxFreeLocks = 1024

type plock struct {
	next, serving uint64
	refs          int
	cond          *sync.Cond
}

func (l *locks) acquire(id engine.PatientID) *plock {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.m[id]
	if p == nil {
		if n := len(l.free); n > 0 {
			p, l.free = l.free[n-1], l.free[:n-1]
		} else {
			p = &plock{cond: sync.NewCond(&l.mu)}
		}
		l.m[id] = p
	}
	t := p.next
	p.next++
	p.refs++
	for p.serving != t {
		p.cond.Wait()
	}
	return p
}

func (l *locks) release(id engine.PatientID, p *plock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p.serving++
	p.refs--
	if p.refs == 0 {
		// Nobody waits on it: reuse it from its first ticket.
		delete(l.m, id)
		if len(l.free) < maxFreeLocks {
			p.next, p.serving = 0, 0
			l.free = append(l.free, p)
		}
		return
	}
	p.cond.Broadcast()
}
