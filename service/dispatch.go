package service

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"time"

	"golang.org/x/time/rate"

	"github.com/aftercare-clinic/aftercare/clock"
	"github.com/aftercare-clinic/aftercare/engine"
)

// Pace is how fast a platform accepts messages.
type Pace struct {
	// PerSecond is the total rate for the platform (Telegram: about 25/s by
	// default; Discord: 50 requests/s).
	PerSecond float64
	// PerChatPerSecond is the rate for one chat (Telegram: about 1/s).
	// Zero means no per-chat limit.
	PerChatPerSecond float64
	// PerChatBurst lets a short reply of two or three messages go out at once.
	PerChatBurst int
}

// Burst is how many messages the platform-wide limit lets out at once
// after a quiet spell: a fifth of a second's worth, at least one. Tests
// derive their bounds on the busiest second from it.
func (p Pace) Burst() int { return max(1, int(p.PerSecond/5)) }

// OutboxStore is the queue of messages to send, as the dispatcher uses it.
type OutboxStore interface {
	// OutboxScan returns up to limit queued messages of a platform in
	// delivery order, leaving out those whose destination skip rejects
	// (looking at most at maxKeys entries).
	OutboxScan(platform string, limit, maxKeys int, skip func(engine.PatientID) bool) ([]engine.Outbound, error)
	// Delivered removes sent (or undeliverable) messages.
	Delivered(ms ...engine.Outbound) error
	// Retry stores a failed message's attempt count and hold.
	Retry(m engine.Outbound) error
	// Enqueue queues messages made outside a step (a forwarded alert).
	Enqueue(ms ...engine.Outbound) error
}

// Dispatcher drains one platform's outbox through its Sender. Messages are
// taken in priority order (escalations and alerts, then replies, then
// check-ins), paced to the platform's limits, and deleted from the outbox
// only once the platform accepted them: a crash between sending and
// deleting resends at most the messages in flight, never loses one. When
// the deletion itself fails, the dispatcher remembers the message and
// retries the deletion, never the send.
//
// # Retries and time
//
// A failed escalation or staff alert is tried again after the service's
// UrgentRetry (a few seconds, fixed); other messages back off from 1 s to
// 5 minutes. Retry holds live in memory and are measured as time elapsed
// on the dispatcher's Clock, never as stored wall times: a step of the
// system clock (back or forward) neither holds a message nor fires a
// retry early. After a restart every queued message is tried at once.
//
// # Staff destinations
//
// A staff chat, channel, webhook or escalation contact that the platform
// refuses (bot removed from the group, wrong chat ID) is never treated
// like a patient who blocked the bot: its messages stay queued and are
// retried, each alert is at once sent to every other staff destination
// and escalation contact that did not get it yet, and the destination is
// reported (log, metrics, /readyz) by its configuration key until a
// message gets through again.
//
// # Private messages
//
// A message marked Private (a desk sign-in link, see engine.Outbound) is
// for one person: it goes to its Destination alone, is never forwarded to
// another staff destination or escalation contact, and is not a staff
// destination's message, so a refusal neither keeps it nor reports a
// staff problem. When the person's private chat refuses it (they never
// started the bot, or closed their DMs) it is dropped without marking
// anyone unreachable. Either way, when it was asked for in a shared staff
// chat (Origin), that chat is told the outcome, never the text.
//
// # Outbox
//
// The dispatcher reads and settles the outbox through OutboxStore only.
type Dispatcher struct {
	svc    *Service
	out    OutboxStore // svc's store: the only part of it a dispatcher uses
	sender Sender
	pace   Pace
	global *rate.Limiter
	chats  map[engine.PatientID]*rate.Limiter
	held   map[engine.PatientID]time.Duration // destinations held back, until when (elapsed time)
	// fanned remembers, per alert, the destinations it was sent to, so a
	// broken destination forwards each alert to the others only once.
	fanned map[string]map[engine.PatientID]bool
	// mono and last turn Clock's readings into elapsed time that never
	// runs backwards (see elapsed).
	mono time.Duration
	last time.Time
	// Clock is what pacing and retry holds are measured on: the real
	// clock unless set (before Run or Pass). It is separate from the
	// service's clock because a platform's limits and outages are in real
	// seconds even when check-ins run on a virtual clock (replays, tests).
	Clock clock.Clock
	// accepted holds a message the platform took but whose removal from
	// the outbox failed: the next pass removes it before scanning, so it is
	// never sent twice. Only the dispatcher's goroutine touches it.
	accepted []engine.Outbound
	// OnUnreachable is called after a patient is marked unreachable (tests, metrics).
	OnUnreachable func(engine.PatientID)
	// Sent counts messages accepted by the platform (read after Run returns, or in tests).
	Sent int
}

// NewDispatcher returns a dispatcher for one platform.
func (s *Service) NewDispatcher(sender Sender, pace Pace) *Dispatcher {
	if pace.PerSecond <= 0 {
		pace.PerSecond = 25
	}
	if pace.PerChatBurst <= 0 {
		pace.PerChatBurst = 3
	}
	return &Dispatcher{
		svc: s, out: s.store, sender: sender, pace: pace,
		global: rate.NewLimiter(rate.Limit(pace.PerSecond), pace.Burst()),
		chats:  map[engine.PatientID]*rate.Limiter{},
		held:   map[engine.PatientID]time.Duration{},
		fanned: map[string]map[engine.PatientID]bool{},
		Clock:  clock.Real{},
	}
}

// elapsed returns how far the dispatcher's clock has moved forward since
// the first reading. Real clock readings carry Go's monotonic time, so a
// step of the system clock does not show; for clocks without it (tests,
// virtual clocks) a step back counts as no time passing, never as negative.
func (d *Dispatcher) elapsed() time.Duration {
	now := d.Clock.Now()
	if !d.last.IsZero() {
		if step := now.Sub(d.last); step > 0 {
			d.mono += step
		}
	}
	d.last = now
	return d.mono
}

func (s *Service) kickChan(platform string) chan struct{} {
	if v, ok := s.out.Load(platform); ok {
		return v.(chan struct{})
	}
	v, _ := s.out.LoadOrStore(platform, make(chan struct{}, 1))
	return v.(chan struct{})
}

func (s *Service) urgentChan(platform string) chan struct{} {
	if v, ok := s.urgent.Load(platform); ok {
		return v.(chan struct{})
	}
	v, _ := s.urgent.LoadOrStore(platform, make(chan struct{}, 1))
	return v.(chan struct{})
}

// kick wakes the platform's dispatcher.
func (s *Service) kick(platform string) {
	select {
	case s.kickChan(platform) <- struct{}{}:
	default:
	}
}

// kickUrgent tells the platform's dispatcher that an escalation or alert
// was committed: it wakes without debouncing, and a pass in progress stops
// sending lower-priority messages and scans again, so the red flag goes
// out next instead of after the current page.
func (s *Service) kickUrgent(platform string) {
	select {
	case s.urgentChan(platform) <- struct{}{}:
	default:
	}
	s.kick(platform)
}

// Run delivers until ctx is cancelled. It is woken when steps queue
// messages; after a pass that could send nothing it waits a few
// milliseconds before reacting to the next wake-up, so a flood of queued
// messages to held-back chats cannot turn it into a busy loop. An
// escalation or alert wakes it at once.
func (d *Dispatcher) Run(ctx context.Context) error {
	wake := d.svc.kickChan(d.sender.Platform())
	urgent := d.svc.urgentChan(d.sender.Platform())
	for {
		wait, err := d.Pass(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			d.svc.log.Error("outbox pass failed", "platform", d.sender.Platform(), "err", err)
			wait = time.Second
		}
		if wait == 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-urgent:
			// Leave the signal for Pass, which then scans from the top.
			select {
			case urgent <- struct{}{}:
			default:
			}
		case <-wake:
			select { // debounce: let a few more steps queue
			case <-ctx.Done():
			case <-urgent:
				select {
				case urgent <- struct{}{}:
				default:
				}
			case <-d.Clock.After(5 * time.Millisecond):
			}
		case <-d.Clock.After(wait):
		}
	}
}

// Pass sends what is ready in the outbox and returns how long to wait
// before the next pass (until the next retry or pace slot, at most a
// second; zero when it made progress and more may be queued).
//
// It sends at most about one second's worth of messages. When an escalation
// or alert is queued meanwhile (kickUrgent), it stops sending the page it
// holds and scans again from the top of the outbox, where the red flag
// sorts, so it goes out next. A chat the pace or a
// retry holds back is remembered until it may send again, and its queued
// messages are skipped by key without being decoded, keeping their order:
// one busy chat, such as a staff chat collecting alerts, neither starves
// the others nor costs a pass more than a key scan.
func (d *Dispatcher) Pass(ctx context.Context) (time.Duration, error) {
	platform := d.sender.Platform()
	if len(d.accepted) > 0 {
		// Sent earlier, but still in the outbox: finish the removal
		// instead of sending them again.
		if err := d.out.Delivered(d.accepted...); err != nil {
			return time.Second, fmt.Errorf("removing %d sent messages from the outbox: %w", len(d.accepted), err)
		}
		d.accepted = d.accepted[:0]
	}
	batch := max(8, int(d.pace.PerSecond))
	urgent := d.svc.urgentChan(platform)
	select { // this pass starts at the top: a signal from before is served
	case <-urgent:
	default:
	}
	now := d.elapsed()
	for dest, until := range d.held {
		if until <= now {
			delete(d.held, dest)
		}
	}
	skip := func(dest engine.PatientID) bool {
		_, held := d.held[dest]
		return held
	}
	progress, sent, limited := false, 0, 0
	// Scan again while this pass held back new chats: what queues behind
	// them may be sendable now.
	for scans, rescans := 0, 0; scans < 4 && sent < batch; scans++ {
		msgs, err := d.out.OutboxScan(platform, batch-sent, maxScan, skip)
		if err != nil {
			return time.Second, err
		}
		newlyHeld, interrupted := false, false
		for _, m := range msgs {
			if ctx.Err() != nil {
				return 0, nil
			}
			if m.Kind.Priority() > 0 && rescans < maxRescans {
				select {
				case <-urgent: // a red flag was queued: it sorts first
					interrupted = true
				default:
				}
				if interrupted {
					break
				}
			}
			dest := m.Destination()
			if skip(dest) {
				continue // held back earlier in this pass: keep the chat's order
			}
			if lim := d.chat(dest); lim != nil && !lim.AllowN(d.Clock.Now(), 1) {
				d.hold(dest, time.Duration(float64(time.Second)/d.pace.PerChatPerSecond))
				newlyHeld = true
				continue
			}
			if err := d.paceGlobal(ctx); err != nil {
				return 0, nil
			}
			done, retry, limitedBy, err := d.deliver(ctx, m)
			if err != nil {
				return time.Second, err
			}
			if limitedBy > 0 {
				// A 429 is usually about one chat (Telegram groups allow
				// ~20 messages a minute): hold that chat; only when several
				// chats are refused is the whole platform slowed down.
				d.hold(dest, limitedBy)
				newlyHeld = true
				if limited++; limited >= 3 {
					return limitedBy, nil
				}
				continue
			}
			if done {
				progress = true
				sent++
			} else {
				d.hold(dest, retry) // failed: held until its retry is due
				newlyHeld = true
			}
		}
		if interrupted {
			rescans++
			scans-- // a rescan for a red flag does not use up the pass
			continue
		}
		if !newlyHeld || len(msgs) == 0 {
			break
		}
	}
	if progress {
		return 0, nil
	}
	wait := time.Second
	now = d.elapsed()
	for _, until := range d.held {
		wait = min(wait, until-now)
	}
	return max(wait, 5*time.Millisecond), nil
}

// maxRescans bounds how often one pass starts over for newly queued red
// flags, so a flood of them cannot keep a pass from ending.
const maxRescans = 64

// paceGlobal waits for the platform-wide pace slot, measured on Clock.
func (d *Dispatcher) paceGlobal(ctx context.Context) error {
	now := d.Clock.Now()
	r := d.global.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	if wait <= 0 {
		return nil
	}
	select {
	case <-ctx.Done():
		r.CancelAt(d.Clock.Now())
		return ctx.Err()
	case <-d.Clock.After(wait):
		return nil
	}
}

// hold keeps a destination back for the duration d from now (bounded map;
// forgetting an entry only costs an early retry).
func (d *Dispatcher) hold(dest engine.PatientID, dur time.Duration) {
	if len(d.held) > 100000 {
		clear(d.held)
	}
	d.held[dest] = d.elapsed() + dur
}

// maxScan bounds how deep one pass reads past held-back messages.
const maxScan = 4096

// deliver sends one message and records the outcome. done is true when
// the message left the outbox (sent, or dropped for a patient who is
// unreachable); otherwise retry is how long to hold its destination, or
// limited is set when the platform asked to slow down.
func (d *Dispatcher) deliver(ctx context.Context, m engine.Outbound) (done bool, retry, limited time.Duration, err error) {
	platform := d.sender.Platform()
	dest := m.Destination()
	serr := d.sender.Send(ctx, m)
	var ra *RetryAfterError
	// A private message (a sign-in link) is for one person, never a staff
	// destination: it is not fanned out, not kept for a refused
	// destination, and its failure makes no patient state.
	staff := !m.Private && (m.To == engine.StaffAddress || d.svc.isStaffDest(dest))
	switch {
	case serr == nil:
		d.Sent++
		d.svc.cfg.Observer.Sent(platform, m.Kind)
		if staff {
			d.svc.staffUp(dest)
		}
		if err := d.privateOutcome(m, true); err != nil {
			return false, 0, 0, err
		}
		if err := d.out.Delivered(m); err != nil {
			// The platform has it: remember it, so the retry of the
			// removal cannot turn into a second send.
			d.accepted = append(d.accepted, m)
			return false, 0, 0, fmt.Errorf("removing sent message %d from the outbox: %w", m.ID, err)
		}
		return true, 0, 0, nil
	case errors.Is(serr, ErrUnreachable) && m.Private:
		// Dropped, never retried or sent anywhere else: the person never
		// opened a private chat with the bot (Telegram 403 "bot can't
		// initiate conversation") or closed their DMs. The chat they asked
		// in is told how to get one; nothing is marked unreachable.
		d.svc.log.Warn("private message undeliverable; dropped", "platform", platform, "to", dest, "kind", m.Kind, "id", m.ID)
		if err := d.privateOutcome(m, false); err != nil {
			return false, 0, 0, err
		}
		if err := d.out.Delivered(m); err != nil {
			return false, 0, 0, err
		}
		return true, 0, 0, nil
	case errors.Is(serr, ErrUnreachable) && staff:
		// Never dropped: keep it, retry it, and reach staff elsewhere now.
		d.svc.cfg.Observer.SendFailed(platform, false)
		d.svc.staffDown(dest, reasonRefused)
		if err := d.fanOutStaff(m); err != nil {
			return false, 0, 0, err
		}
		m.Attempts++
		retry = d.retryDelay(m)
		m.NotBefore = d.Clock.Now().Add(retry) // informational; holds are kept in memory
		d.svc.log.Error("staff destination refused the message; kept for retry", "platform", platform, "key", d.svc.StaffKey(dest),
			"kind", m.Kind, "id", m.ID, "attempt", m.Attempts, "retry_in", retry)
		return false, retry, 0, d.out.Retry(m)
	case errors.Is(serr, ErrUnreachable):
		d.svc.log.Warn("recipient unreachable; message dropped", "platform", platform, "to", dest, "kind", m.Kind, "id", m.ID)
		if err := d.out.Delivered(m); err != nil {
			return false, 0, 0, err
		}
		if m.Channel == "" {
			if err := d.svc.MarkUnreachable(ctx, m.To); err != nil {
				return false, 0, 0, err
			}
			if d.OnUnreachable != nil {
				d.OnUnreachable(m.To)
			}
		}
		return true, 0, 0, nil
	case errors.As(serr, &ra):
		d.svc.cfg.Observer.SendFailed(platform, true)
		m.Attempts++
		m.NotBefore = d.Clock.Now().Add(ra.After) // informational; holds are kept in memory
		d.svc.log.Warn("rate limited by platform", "platform", platform, "retry_after", ra.After, "id", m.ID)
		return false, 0, max(ra.After, time.Millisecond), d.out.Retry(m)
	default:
		d.svc.cfg.Observer.SendFailed(platform, false)
		m.Attempts++
		retry = d.retryDelay(m)
		m.NotBefore = d.Clock.Now().Add(retry) // informational; holds are kept in memory
		d.svc.log.Warn("send failed; will retry", "platform", platform, "id", m.ID, "attempt", m.Attempts, "retry_in", retry, "err", serr)
		return false, retry, 0, d.out.Retry(m)
	}
}

// privateOutcome queues, for a private message asked for in a shared
// staff chat, the notice telling that chat whether it was delivered. It
// is queued before the private message leaves the outbox: a crash in
// between resends the private message to the same person (a duplicate,
// never a leak) rather than leaving the chat without an answer.
func (d *Dispatcher) privateOutcome(m engine.Outbound, delivered bool) error {
	n, ok := d.svc.privateOutcome(m, delivered, d.svc.clock.Now())
	if !ok {
		return nil
	}
	if err := d.out.Enqueue(n); err != nil {
		return fmt.Errorf("queueing the outcome of private message %d: %w", m.ID, err)
	}
	d.svc.kick(n.Destination().Platform())
	return nil
}

// retryDelay is how long a failed message waits before its next attempt:
// the short fixed UrgentRetry for escalations and alerts, an exponential
// backoff for everything else.
func (d *Dispatcher) retryDelay(m engine.Outbound) time.Duration {
	if m.Kind.Priority() == 0 {
		return d.svc.cfg.UrgentRetry
	}
	return backoff(m.Attempts)
}

// fanOutStaff sends an alert that a staff destination refused to every
// other staff channel and escalation contact that has not had it yet, at
// once. An alert already goes to every staff channel when it is queued, so
// in practice this reaches the escalation contacts now instead of after
// two unacknowledged ladder steps. Each alert is forwarded once per
// destination while this process runs (after a restart a still-refused
// alert may be forwarded once more: a duplicate, never a loss).
func (d *Dispatcher) fanOutStaff(m engine.Outbound) error {
	if m.Kind != engine.KindAlert || m.Private {
		return nil // notices, answers and private messages wait for their own destination
	}
	key := alertKey(m)
	covered := d.fanned[key]
	if covered == nil {
		if len(d.fanned) > 10000 {
			clear(d.fanned) // bounded memory; at worst a duplicate alert
		}
		covered = map[engine.PatientID]bool{}
		for _, ch := range d.svc.staff {
			covered[ch] = true // queued there with the alert itself
		}
		d.fanned[key] = covered
	}
	covered[m.Destination()] = true
	var copies []engine.Outbound
	kick := map[string]bool{}
	for _, ch := range dedupeIDs(append(append([]engine.PatientID(nil), d.svc.staff...), d.svc.cfg.EscalationContacts...)) {
		if covered[ch] {
			continue
		}
		covered[ch] = true
		c := m
		c.ID, c.Attempts, c.NotBefore, c.Channel = 0, 0, engine.Time{}, ch
		if ch == engine.StaffAddress {
			c.Channel = ""
		}
		copies = append(copies, c)
		kick[ch.Platform()] = true
	}
	if len(copies) == 0 {
		return nil
	}
	if err := d.out.Enqueue(copies...); err != nil {
		return err
	}
	d.svc.log.Warn("alert forwarded to the other staff destinations", "from_key", d.svc.StaffKey(m.Destination()), "copies", len(copies), "id", m.ID)
	for pl := range kick {
		d.svc.kickUrgent(pl)
	}
	return nil
}

// alertKey identifies one alert across its copies to different
// destinations (they share patient, escalation, creation time and text).
func alertKey(m engine.Outbound) string {
	h := fnv.New64a()
	h.Write([]byte(m.Text))
	return fmt.Sprintf("%s|%d|%d|%x", m.Patient, m.EscalationID, time.Time(m.Created).UnixNano(), h.Sum64())
}

func (d *Dispatcher) chat(dest engine.PatientID) *rate.Limiter {
	if d.pace.PerChatPerSecond <= 0 {
		return nil
	}
	l := d.chats[dest]
	if l == nil {
		if len(d.chats) > 10000 {
			d.chats = map[engine.PatientID]*rate.Limiter{} // bounded memory; limits reset
		}
		l = rate.NewLimiter(rate.Limit(d.pace.PerChatPerSecond), d.pace.PerChatBurst)
		d.chats[dest] = l
	}
	return l
}

// MaxRetryWait bounds how long a message that kept failing through an
// outage of length outage waits, once the platform is back, before its
// next attempt. Attempt a waits between half and all of min(2^(a-1) s,
// 5 min); the attempts before it waited at least half of each earlier
// step, so an attempt that failed inside the outage has a backoff of at
// most twice the outage plus the first step. Tests use it to bound the
// delay after a recovery; a change to backoff must keep it true.
func MaxRetryWait(outage time.Duration) time.Duration {
	return min(2*max(outage, 0)+time.Second, 5*time.Minute)
}

// backoff grows from 1 s to 5 min with jitter; messages are never dropped
// for transient errors.
func backoff(attempt int) time.Duration {
	d := time.Second << min(attempt-1, 9)
	d = min(d, 5*time.Minute)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}
