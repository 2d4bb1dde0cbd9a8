package service

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"golang.org/x/time/rate"

	"aftercare/engine"
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

// Dispatcher drains one platform's outbox through its Sender. Messages are
// taken in priority order (escalations and alerts, then replies, then
// check-ins), paced to the platform's limits, and deleted from the outbox
// only once the platform accepted them: a crash between sending and
// deleting resends at most the messages in flight, never loses one. When
// the deletion itself fails, the dispatcher remembers the message and
// retries the deletion, never the send.
type Dispatcher struct {
	svc    *Service
	sender Sender
	pace   Pace
	global *rate.Limiter
	chats  map[engine.PatientID]*rate.Limiter
	held   map[engine.PatientID]time.Time // destinations held back, until when
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
		svc: s, sender: sender, pace: pace,
		global: rate.NewLimiter(rate.Limit(pace.PerSecond), pace.Burst()),
		chats:  map[engine.PatientID]*rate.Limiter{},
		held:   map[engine.PatientID]time.Time{},
	}
}

func (s *Service) kickChan(platform string) chan struct{} {
	if v, ok := s.out.Load(platform); ok {
		return v.(chan struct{})
	}
	v, _ := s.out.LoadOrStore(platform, make(chan struct{}, 1))
	return v.(chan struct{})
}

// kick wakes the platform's dispatcher.
func (s *Service) kick(platform string) {
	select {
	case s.kickChan(platform) <- struct{}{}:
	default:
	}
}

// Run delivers until ctx is cancelled. It is woken when steps queue
// messages; after a pass that could send nothing it waits a few
// milliseconds before reacting to the next wake-up, so a flood of queued
// messages to held-back chats cannot turn it into a busy loop.
func (d *Dispatcher) Run(ctx context.Context) error {
	wake := d.svc.kickChan(d.sender.Platform())
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
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-wake:
			select { // debounce: let a few more steps queue
			case <-ctx.Done():
			case <-time.After(5 * time.Millisecond):
			}
		case <-t.C:
		}
		t.Stop()
	}
}

// Pass sends what is ready in the outbox and returns how long to wait
// before the next pass (until the next retry or pace slot, at most a
// second; zero when it made progress and more may be queued).
//
// It sends at most about one second's worth of messages, so an escalation
// queued during a burst is picked up within a second. A chat the pace or a
// retry holds back is remembered until it may send again, and its queued
// messages are skipped by key without being decoded, keeping their order:
// one busy chat, such as a staff chat collecting alerts, neither starves
// the others nor costs a pass more than a key scan.
func (d *Dispatcher) Pass(ctx context.Context) (time.Duration, error) {
	platform := d.sender.Platform()
	if len(d.accepted) > 0 {
		// Sent earlier, but still in the outbox: finish the removal
		// instead of sending them again.
		if err := d.svc.store.Delivered(d.accepted...); err != nil {
			return time.Second, fmt.Errorf("removing %d sent messages from the outbox: %w", len(d.accepted), err)
		}
		d.accepted = d.accepted[:0]
	}
	batch := max(8, int(d.pace.PerSecond))
	now := time.Now()
	for dest, until := range d.held {
		if !until.After(now) {
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
	for scans := 0; scans < 4 && sent < batch; scans++ {
		msgs, err := d.svc.store.OutboxScan(platform, batch-sent, maxScan, skip)
		if err != nil {
			return time.Second, err
		}
		newlyHeld := false
		for _, m := range msgs {
			if ctx.Err() != nil {
				return 0, nil
			}
			dest := m.Destination()
			if skip(dest) {
				continue // held back earlier in this pass: keep the chat's order
			}
			if !m.NotBefore.IsZero() && m.NotBefore.After(now) {
				d.hold(dest, m.NotBefore)
				newlyHeld = true
				continue
			}
			if lim := d.chat(dest); lim != nil && !lim.Allow() {
				d.hold(dest, now.Add(time.Duration(float64(time.Second)/d.pace.PerChatPerSecond)))
				newlyHeld = true
				continue
			}
			if err := d.global.Wait(ctx); err != nil {
				return 0, nil
			}
			done, pause, err := d.deliver(ctx, m)
			if err != nil {
				return time.Second, err
			}
			if pause > 0 {
				// A 429 is usually about one chat (Telegram groups allow
				// ~20 messages a minute): hold that chat; only when several
				// chats are refused is the whole platform slowed down.
				d.hold(dest, time.Now().Add(pause))
				newlyHeld = true
				if limited++; limited >= 3 {
					return pause, nil
				}
				continue
			}
			if done {
				progress = true
				sent++
			} else {
				d.hold(dest, time.Now().Add(time.Second/2)) // failed: retried after its backoff
				newlyHeld = true
			}
		}
		if !newlyHeld || len(msgs) == 0 {
			break
		}
	}
	if progress {
		return 0, nil
	}
	wait := time.Second
	for _, until := range d.held {
		wait = min(wait, time.Until(until))
	}
	return max(wait, 5*time.Millisecond), nil
}

// hold keeps a destination back until t (bounded map; forgetting an
// entry only costs a decode).
func (d *Dispatcher) hold(dest engine.PatientID, t time.Time) {
	if len(d.held) > 100000 {
		clear(d.held)
	}
	d.held[dest] = t
}

// maxScan bounds how deep one pass reads past held-back messages.
const maxScan = 4096

// deliver sends one message and records the outcome. done is true when
// the message left the outbox (sent, or dropped for an unreachable
// recipient); pause is set when the platform asked to slow down.
func (d *Dispatcher) deliver(ctx context.Context, m engine.Outbound) (done bool, pause time.Duration, err error) {
	platform := d.sender.Platform()
	dest := m.Destination()
	serr := d.sender.Send(ctx, m)
	var ra *engine.RetryAfterError
	switch {
	case serr == nil:
		d.Sent++
		d.svc.cfg.Observer.Sent(platform, m.Kind)
		if err := d.svc.store.Delivered(m); err != nil {
			// The platform has it: remember it, so the retry of the
			// removal cannot turn into a second send.
			d.accepted = append(d.accepted, m)
			return false, 0, fmt.Errorf("removing sent message %d from the outbox: %w", m.ID, err)
		}
		return true, 0, nil
	case errors.Is(serr, engine.ErrUnreachable):
		d.svc.log.Warn("recipient unreachable; message dropped", "platform", platform, "to", dest, "kind", m.Kind, "id", m.ID)
		if err := d.svc.store.Delivered(m); err != nil {
			return false, 0, err
		}
		if m.Channel == "" && m.To != engine.StaffAddress {
			if err := d.svc.MarkUnreachable(ctx, m.To); err != nil {
				return false, 0, err
			}
			if d.OnUnreachable != nil {
				d.OnUnreachable(m.To)
			}
		}
		return true, 0, nil
	case errors.As(serr, &ra):
		d.svc.cfg.Observer.SendFailed(platform, true)
		m.Attempts++
		m.NotBefore = time.Now().Add(ra.After)
		d.svc.log.Warn("rate limited by platform", "platform", platform, "retry_after", ra.After, "id", m.ID)
		return false, max(ra.After, time.Millisecond), d.svc.store.Retry(m)
	default:
		d.svc.cfg.Observer.SendFailed(platform, false)
		m.Attempts++
		back := backoff(m.Attempts)
		m.NotBefore = time.Now().Add(back)
		d.svc.log.Warn("send failed; will retry", "platform", platform, "id", m.ID, "attempt", m.Attempts, "retry_in", back, "err", serr)
		return false, 0, d.svc.store.Retry(m)
	}
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
