// Package service runs the engine against the store: it turns platform
// input into engine steps committed in one transaction each, fires the
// schedule on a clock, and drains the outbox to the platforms at a pace
// they accept.
//
// # Concurrency
//
// All exported methods are safe for concurrent use. Steps for one patient
// run one at a time, in the order their callers arrived (a FIFO ticket per
// patient); steps for different patients run in parallel and share commits.
//
// # Catch-up after downtime
//
// Timers are durable. When the service starts after downtime, every timer
// that fell due while it was down fires once, earliest first, on the next
// scheduler pass. The engine then decides: a check-in is sent late (with
// an apology) unless quiet hours hold it until morning; if an earlier
// check-in of the same visit is still unanswered it is closed as
// unanswered and the next one is sent. Nothing is dropped silently (each
// decision is in the audit trail) and nothing is sent twice (the timer is
// removed in the transaction that queues its message).
package service

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"aftercare/clock"
	"aftercare/engine"
	"aftercare/store"
)

// Store is the durable storage the service needs. *store.Store implements it.
type Store interface {
	Apply(ctx context.Context, st store.Step, fn func(store.Input) (engine.Result, error)) (bool, error)
	State(id engine.PatientID) (engine.State, bool, error)
	StateRaw(id engine.PatientID) (engine.State, []byte, error)
	PutInvite(inv engine.Invite) error
	ApplyEscalation(ctx context.Context, id uint64, due *store.Due, now time.Time, fn func(*engine.Escalation) (store.EscalationUpdate, error)) (bool, error)
	Escalations() ([]engine.Escalation, error)
	Patients(fn func(engine.State) error) error
	PatientRecord(p engine.PatientID) (store.Record, error)
	Audit() ([]engine.Audit, error)
	AppendAudit(ctx context.Context, as ...engine.Audit) error
	DueBefore(now time.Time, limit int) ([]store.Due, error)
	NextDue() (store.Due, bool, error)
	Outbox(platform string, limit int) ([]engine.Outbound, error)
	OutboxScan(platform string, limit, maxKeys int, skip func(engine.PatientID) bool) ([]engine.Outbound, error)
	Delivered(ms ...engine.Outbound) error
	Retry(m engine.Outbound) error
	Enqueue(ms ...engine.Outbound) error
	PruneDedupe(before time.Time) (int, error)
}

// DedupeHorizon is how long platform update keys are remembered.
// Platforms redeliver for at most a day (Telegram keeps unconfirmed
// updates 24 h; Discord resumes within minutes), and Telegram may restart
// its update IDs after a week of silence, so keys are forgotten well
// before that can collide.
const DedupeHorizon = 3 * 24 * time.Hour

var _ Store = (*store.Store)(nil)

// Service connects engine, store and clock. Create it with New.
type Service struct {
	engine *engine.Engine
	store  Store
	clock  clock.Clock
	log    *slog.Logger
	staff  []engine.PatientID
	cfg    Config

	locks  locks
	states *stateCache
	wake   chan struct{} // scheduler
	out    sync.Map      // platform -> chan struct{} (dispatcher wake-ups)
}

// Config holds what New needs.
type Config struct {
	Engine *engine.Engine
	Store  Store
	Clock  clock.Clock
	Logger *slog.Logger
	// StaffChannels are where staff messages go, each "platform:address"
	// (for example "telegram:-1001234", "console:staff"). Every alert is
	// queued once per channel. At least one is required: an alert with
	// nowhere to go would be a silent failure.
	StaffChannels []engine.PatientID
	// StaffIDs, when set, lists who may use staff commands ("telegram:42").
	// Adapters already only pass staff messages from configured staff; this
	// is the second gate. Empty means any message the adapters pass on.
	StaffIDs []string
	// AckTimeout is how long an urgent or emergency alert may stay
	// unacknowledged before it is sent again, then forwarded along
	// EscalationContacts (default 10 minutes; negative disables).
	AckTimeout time.Duration
	// EscalationContacts are further channels tried in order when an alert
	// stays unacknowledged ("telegram:<a manager's chat>", "webhook:sms").
	EscalationContacts []engine.PatientID
	// Retention is how long a patient's data is kept after their last
	// visit or message (default 90 days).
	Retention time.Duration
	// InviteLinks renders an invite token as what staff hand the patient
	// (a Telegram deep link, a Discord code). Nil shows the bare token.
	InviteLinks func(token string) []string
	// InviteTTL is how long an invite stays valid (default 7 days).
	InviteTTL time.Duration
	// Observer, when set, is told what happens, for metrics.
	Observer Observer
	// StaffLogin, when set, answers the /login staff command: it returns a
	// one-time sign-in link to the staff desk for the staff member, or an
	// error (one with a StaffRefusal() string method is shown to them).
	// Nil: the desk is off and /login says so.
	StaffLogin func(ctx context.Context, staff string) (string, error)
}

// Observer receives counts of what the service does. Calls are made from
// many goroutines and must not block.
type Observer interface {
	// Received counts an inbound message from a platform.
	Received(platform string)
	// Step observes one committed step: how long the store took.
	Step(d time.Duration)
	// Escalated counts an escalation at a level.
	Escalated(l engine.Level)
	// CheckinFired counts a check-in timer firing, late by the given time.
	CheckinFired(late time.Duration)
	// Sent counts a message a platform accepted.
	Sent(platform string, k engine.Kind)
	// SendFailed counts a failed delivery attempt; rateLimited marks a 429.
	SendFailed(platform string, rateLimited bool)
}

type nopObserver struct{}

func (nopObserver) Received(string)            {}
func (nopObserver) Step(time.Duration)         {}
func (nopObserver) Escalated(engine.Level)     {}
func (nopObserver) CheckinFired(time.Duration) {}
func (nopObserver) Sent(string, engine.Kind)   {}
func (nopObserver) SendFailed(string, bool)    {}

// New returns a service.
func New(c Config) (*Service, error) {
	if c.Engine == nil || c.Store == nil || c.Clock == nil {
		return nil, errors.New("service: engine, store and clock are required")
	}
	if len(c.StaffChannels) == 0 {
		return nil, errors.New("service: at least one staff channel is required, so alerts reach someone")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = 10 * time.Minute
	}
	if c.Retention == 0 {
		c.Retention = 90 * 24 * time.Hour
	}
	if c.InviteTTL == 0 {
		c.InviteTTL = 7 * 24 * time.Hour
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	s := &Service{
		engine: c.Engine, store: c.Store, clock: c.Clock, log: c.Logger, staff: c.StaffChannels, cfg: c,
		locks:  locks{m: map[engine.PatientID]*plock{}},
		states: newStateCache(stateCacheSize),
		wake:   make(chan struct{}, 1),
	}
	if qn, ok := c.Store.(quarantineNotifier); ok {
		qn.SetQuarantineNotice(s.quarantineNotice)
	}
	return s, nil
}

// Receive applies a patient's message or button press. It returns once the
// step and the messages it caused are committed, so a platform adapter may
// then confirm the update to its platform. An Inbound whose DedupeKey was
// already applied is ignored and nil is returned.
func (s *Service) Receive(ctx context.Context, in engine.Inbound) error {
	if in.Patient == "" {
		return errors.New("service: inbound without patient")
	}
	s.cfg.Observer.Received(in.Patient.Platform())
	ev := engine.Event{Kind: engine.EventMessage, Text: in.Text, Choice: in.Choice, DisplayName: in.DisplayName, Lang: in.Lang}
	_, err := s.applyInvite(ctx, in.Patient, in.DedupeKey, nil, InvitePayload(in.Text), ev)
	return err
}

// InvitePayload returns the invite token of a "/start TOKEN" deep link, or
// "" when the text is not one. Tokens are 1-64 characters of A-Z a-z 0-9 _ -.
func InvitePayload(text string) string {
	rest, ok := strings.CutPrefix(strings.TrimSpace(text), "/start ")
	if !ok {
		return ""
	}
	rest = strings.TrimSpace(rest)
	if len(rest) == 0 || len(rest) > 64 {
		return ""
	}
	for _, r := range rest {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return ""
		}
	}
	return rest
}

// CreateInvite records a visit as a one-time invite valid for ttl and
// returns its token (128 random bits, base64url, 22 characters). The token
// says nothing about the patient.
func (s *Service) CreateInvite(ctx context.Context, v engine.Visit, ttl time.Duration) (engine.Invite, error) {
	if !v.Treatment.Valid() {
		return engine.Invite{}, fmt.Errorf("service: unknown treatment %q (want acupuncture, electroacupuncture or dry_needling)", v.Treatment)
	}
	if ttl <= 0 {
		ttl = 7 * 24 * time.Hour
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return engine.Invite{}, err
	}
	now := s.clock.Now()
	inv := engine.Invite{Token: base64.RawURLEncoding.EncodeToString(b[:]), Visit: v, Created: now, Expires: now.Add(ttl)}
	if err := s.store.PutInvite(inv); err != nil {
		return engine.Invite{}, err
	}
	s.log.Info("invite created", "expires", inv.Expires)
	return inv, nil
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

func (s *Service) apply(ctx context.Context, id engine.PatientID, dedupe string, due *store.Due, ev engine.Event) (bool, error) {
	return s.applyInvite(ctx, id, dedupe, due, "", ev)
}

func (s *Service) applyInvite(ctx context.Context, id engine.PatientID, dedupe string, due *store.Due, invite string, ev engine.Event) (bool, error) {
	p := s.locks.acquire(id)
	defer s.locks.release(id, p)
	now := s.clock.Now()
	start := time.Now()
	var sent []engine.Outbound
	var esc *engine.Escalation
	var timers bool // the step (re)schedules timers: the scheduler must look again
	step := func(st engine.State, inv engine.InviteResult) engine.Result {
		ev := ev
		ev.Invite = inv
		res := s.engine.Step(id, st, ev, now)
		res.Messages = s.fanOut(res.Messages)
		if e := res.Escalation; e != nil && e.Level.Escalates() && s.cfg.AckTimeout > 0 {
			res.Timers = append(res.Timers, engine.Timer{Key: store.LadderKey, At: now.Add(s.cfg.AckTimeout)})
		}
		return res
	}
	// Compute the step before the write transaction, so engine and triage
	// work runs in parallel across patients instead of inside bbolt's one
	// writer. The per-patient FIFO means nobody else changes this patient
	// meanwhile; the result is used only if the stored state is still the
	// one it was computed from (Handled counts every step), and recomputed
	// inside the transaction otherwise. Invites resolve inside only.
	var pre *store.Prepared
	cached, hit := s.states.take(id)
	if invite == "" {
		if !hit {
			if st, raw, err := s.store.StateRaw(id); err == nil {
				cached, hit = &cachedState{raw: raw, st: st}, true
			}
		}
		if hit {
			r := step(cached.st, engine.InviteResult{})
			b, err1 := json.Marshal(r.State)
			ms, err2 := store.EncodeMessages(r.Messages)
			if err1 == nil && err2 == nil {
				pre = &store.Prepared{From: cached.raw, Result: r, State: b, Messages: ms}
				sent, esc, timers = r.Messages, r.Escalation, len(r.Timers) > 0
			}
		}
	}
	recomputed := false
	var heard *store.TranscriptLine
	if ev.Kind == engine.EventMessage {
		heard = &store.TranscriptLine{At: now, From: store.FromPatient, Text: ev.Text, Choice: ev.Choice}
	}
	applied, err := s.store.Apply(ctx, store.Step{Patient: id, Dedupe: dedupe, Due: due, Invite: invite, Now: now, Prepared: pre, Heard: heard},
		func(in store.Input) (engine.Result, error) {
			res := step(in.State, in.Invite) // the stored state changed: recompute
			sent, esc, timers = res.Messages, res.Escalation, len(res.Timers) > 0
			recomputed = true
			return res, nil
		})
	if err == nil && applied && pre != nil && !recomputed && !pre.Result.Erase {
		s.states.put(id, &cachedState{raw: pre.State, st: pre.Result.State})
	}
	s.cfg.Observer.Step(time.Since(start))
	if err != nil {
		s.log.Error("step failed", "patient", id, "event", ev.Kind, "err", err)
		return false, err
	}
	if !applied {
		s.log.Debug("step skipped (already applied)", "patient", id, "event", ev.Kind)
		return false, nil
	}
	platforms := map[string]bool{}
	for _, m := range sent {
		platforms[m.Destination().Platform()] = true
	}
	for pl := range platforms {
		s.kick(pl)
	}
	if esc != nil {
		s.cfg.Observer.Escalated(esc.Level)
		s.log.Warn("escalation", "patient", id, "level", esc.Level.String(), "signs", esc.Signs)
	}
	if due != nil && strings.HasPrefix(due.Key, "checkin:") {
		s.cfg.Observer.CheckinFired(now.Sub(due.At))
	}
	s.log.Debug("step", "patient", id, "event", ev.Kind, "messages", len(sent))
	if timers {
		s.Wake()
	}
	return true, nil
}

// fanOut turns each staff message into one message per staff channel.
func (s *Service) fanOut(ms []engine.Outbound) []engine.Outbound {
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

// Fire applies one due timer. It reports false when the timer had already
// been applied (by another pass, or before a restart).
func (s *Service) Fire(ctx context.Context, d store.Due) (bool, error) {
	if strings.HasPrefix(string(d.Patient), "escalation:") {
		return s.fireLadder(ctx, d)
	}
	return s.apply(ctx, d.Patient, "", &d, engine.Event{Kind: engine.EventDue, Timer: d.Key})
}

// dueWorkers is how many patients' due timers DeliverDue fires at once.
// Steps of different patients share group commits, so firing them
// concurrently turns one commit per check-in into one per group: catching
// up after downtime goes from a few hundred check-ins a second to thousands.
const dueWorkers = 32

// DeliverDue fires every timer due at the clock's current time and returns
// how many it applied. Timers are taken earliest first, 256 at a time;
// different patients' timers fire concurrently, one patient's always in due
// order (an older check-in is settled before a newer one).
func (s *Service) DeliverDue(ctx context.Context) (int, error) {
	n := 0
	for {
		due, err := s.store.DueBefore(s.clock.Now(), 256)
		if err != nil {
			return n, err
		}
		if len(due) == 0 {
			return n, nil
		}
		fired, err := s.fireAll(ctx, due)
		n += fired
		if err != nil {
			return n, err
		}
		if fired == 0 {
			return n, nil
		}
	}
}

// fireAll fires due (in due order) with up to dueWorkers patients at once,
// each patient's timers in order on one worker. It stops taking new
// patients at the first error and returns it.
func (s *Service) fireAll(ctx context.Context, due []store.Due) (int, error) {
	var order []engine.PatientID
	byPatient := map[engine.PatientID][]store.Due{}
	for _, d := range due {
		if _, ok := byPatient[d.Patient]; !ok {
			order = append(order, d.Patient)
		}
		byPatient[d.Patient] = append(byPatient[d.Patient], d)
	}
	var (
		mu       sync.Mutex
		fired    int
		firstErr error
		wg       sync.WaitGroup
	)
	next := make(chan engine.PatientID)
	for range min(dueWorkers, len(order)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range next {
				for _, d := range byPatient[p] {
					ok, err := s.Fire(ctx, d)
					mu.Lock()
					if ok {
						fired++
					}
					if err != nil && firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					if err != nil {
						break
					}
				}
			}
		}()
	}
	for _, p := range order {
		mu.Lock()
		stop := firstErr != nil
		mu.Unlock()
		if stop {
			break
		}
		next <- p
	}
	close(next)
	wg.Wait()
	return fired, firstErr
}

// Wake makes the scheduler look at the schedule again (after new timers).
func (s *Service) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// RunScheduler fires timers as they fall due until ctx is cancelled. It
// first catches up on everything that fell due while the service was down.
func (s *Service) RunScheduler(ctx context.Context) error {
	backoff := time.Second
	// Catch up on due check-ins first; the daily purge (a walk over all
	// patients) first runs an hour after start.
	lastPurge := s.clock.Now().Add(-23 * time.Hour)
	for {
		if now := s.clock.Now(); now.Sub(lastPurge) >= 24*time.Hour {
			lastPurge = now
			if n, err := s.Purge(ctx); err != nil {
				s.log.Error("retention purge failed", "err", err)
			} else if n > 0 {
				s.log.Info("retention purge", "patients_erased", n)
			}
			if n, err := s.store.PruneDedupe(now.Add(-DedupeHorizon)); err != nil {
				s.log.Error("pruning dedupe keys failed", "err", err)
			} else if n > 0 {
				s.log.Debug("dedupe keys pruned", "count", n)
			}
		}
		if _, err := s.DeliverDue(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.log.Error("scheduler pass failed; retrying", "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return nil
			case <-s.clock.After(backoff):
			}
			backoff = min(backoff*2, time.Minute)
			continue
		}
		backoff = time.Second
		wait := time.Minute
		if d, ok, err := s.store.NextDue(); err == nil && ok {
			wait = max(d.At.Sub(s.clock.Now()), 0)
			wait = min(wait, time.Minute)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-s.clock.After(wait):
		}
	}
}

// ---- per-patient FIFO ----

type locks struct {
	mu sync.Mutex
	m  map[engine.PatientID]*plock
}

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
		p = &plock{cond: sync.NewCond(&l.mu)}
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
		delete(l.m, id)
	}
	p.cond.Broadcast()
}
